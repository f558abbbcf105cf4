"""``looplabel simulate``: the whole human-in-the-loop cycle, unattended, with a simulated crowd.

A project of synthetic tissue with known ground truth goes through ``rounds`` rounds of
predict → crop → simulated annotators → fuse → stitch → simulated reviewer → dataset → train →
promote, over the real web app served on a local port: the admin acts through the admin API
(HTTP Basic), every annotator through the crowd API with its bearer token (lease, channels,
labels, server tools, revisions, submit) and the reviewer through the review API. Jobs run on the
runtime's queue: the in-process thread, or RQ on Redis with burst workers run here between steps.

The simulation's *oracle* (the ground truth of a crop, which assignment was gold) reads the
database and never acts; what annotators and reviewer do is modelled in
:mod:`backend.core.crowd_simulation`. Each round a fresh batch of ``images`` images is uploaded
(approved images do not come back; the rounds are balanced by cell count), so the training set
grows round by round.

Report (``report.json`` + SVG and PNG learning curves in ``out_dir``): per round the held-out F1
of the model that predicted it (the classical baseline in round 0) on synthetic test images that
no round ever sees, corrections per crop (changed cells and pixels between the prediction and an
honest annotator's submission), median simulated time per crop, gold accuracy by profile, and
whether the spammer was caught (flagged from platform figures and blocked).
"""

from __future__ import annotations

import base64
import io
import json
import logging
import secrets
import threading
import time
import urllib.error
import urllib.request
import zlib
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from sqlalchemy import func, select

from backend.core import crowd_simulation as crowd
from backend.models import Assignment, Crop, Image, Job, Project, Round

log = logging.getLogger(__name__)


class SimulationError(RuntimeError):
    """The simulated loop cannot go on; the message says which step failed and why."""


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate. ``images`` new synthetic images of ``size``² px are added every round."""

    images: int = 4
    size: int = 512
    channels: int = 2
    rounds: int = 3
    annotators_per_crop: int = 2
    profiles: str = "careful*2,hasty,spammer"
    train_steps: int = 200
    # > 0: each training runs this many steps per approved image (the rounds' fine-tunes see more
    # images each round; at a fixed length, each image is seen less and less); 0: train_steps
    steps_per_image: int = 0
    backbone: str = "small"
    seed: int = 0
    out_dir: Path = Path("simulation")
    crop_size: int = 270
    gold_fraction: float = 0.25
    approve_f1: float = 0.9
    redo_f1: float = 0.4
    test_images: int = 2
    # None: every image is uploaded with its truth (gold crops anywhere; promotion judges held-out
    # images by it). K: only the first K images of each round are; the simulated people still see
    # the others' truth, which the product never does (a lab with ground truth for a few images)
    truth_images: int | None = None
    promotion: str = "rule"  # "rule": the project's auto-promotion; "always": the admin promotes each version
    project_name: str | None = None
    data: Path | None = None  # a lab's labelled NPZ instead of the synthetic generator
    data_channels: str | None = None  # "nuclear,membrane" channel indices of ``data``
    policy: dict | None = None  # the rounds' crowd policy (backend.services.crowd_policy); None: all

    def __post_init__(self):
        checks = [(1 <= self.images <= 500, "images must be between 1 and 500"),
                  (64 <= self.size <= 4096, "size must be between 64 and 4096 px"),
                  (self.data is not None or 2 <= self.channels <= 16,
                   "channels must be between 2 (DAPI, membrane) and 16"),
                  (1 <= self.rounds <= 50, "rounds must be between 1 and 50"),
                  (1 <= self.annotators_per_crop <= 20, "annotators per crop must be between 1 and 20"),
                  (1 <= self.train_steps <= 10**6, "training steps must be a positive number"),
                  (0 <= self.steps_per_image <= 10**5, "steps per image must be between 0 and 100000"),
                  (self.backbone in ("small", "resnet50"), "backbone must be small or resnet50"),
                  (self.promotion in ("rule", "always"), "promotion must be rule or always"),
                  (0.0 < self.approve_f1 <= 1.0, "approve_f1 must be in (0, 1]"),
                  (0 <= self.test_images <= 50, "test_images must be between 0 and 50"),
                  (self.truth_images is None or 0 <= self.truth_images <= self.images,
                   "truth images must be between 0 and the images per round")]
        for ok, message in checks:
            if not ok:
                raise SimulationError(message)
        from backend.errors import UserError
        from backend.services.crowd_policy import validate_policy

        try:
            object.__setattr__(self, "policy", validate_policy(self.policy))
        except UserError as exc:
            raise SimulationError(str(exc)) from None
        from worker.simulation_data import LabelledFileImages, SimulationDataError, SyntheticImages

        try:
            source = (LabelledFileImages(Path(self.data), self.data_channels, self.images, self.rounds,
                                              self.test_images) if self.data is not None
                      else SyntheticImages(self.size, self.channels, self.seed, self.images, self.test_images,
                                           self.rounds))
        except SimulationDataError as exc:
            raise SimulationError(str(exc)) from None
        object.__setattr__(self, "source", source)  # frozen: set once, not a field
        try:
            annotators = crowd.parse_profiles(self.profiles)
        except ValueError as exc:
            raise SimulationError(str(exc)) from None
        if len(annotators) < self.annotators_per_crop:
            raise SimulationError(f"{len(annotators)} annotator(s) cannot give {self.annotators_per_crop} "
                                  "annotations per crop; name more profiles or lower annotators per crop")


# --- HTTP -----------------------------------------------------------------------------------------
class HttpClient:
    """A tiny urllib client for one identity (HTTP Basic, or a bearer token per call)."""

    def __init__(self, base_url: str, basic: tuple[str, str] | None = None):
        self.base_url = base_url.rstrip("/")
        self.auth = "Basic " + base64.b64encode(f"{basic[0]}:{basic[1]}".encode()).decode() if basic else None

    def call(self, method: str, path: str, *, json_body=None, data: bytes | None = None, headers=None,
             token: str | None = None, ok=(200, 201, 202)) -> tuple[int, dict, bytes]:
        """One request; returns (status, headers, body) or raises :class:`HttpFailure`."""
        headers = dict(headers or {})
        if json_body is not None:
            data, headers["Content-Type"] = json.dumps(json_body).encode(), "application/json"
        if token:
            headers["Authorization"] = f"Bearer {token}"
        elif self.auth:
            headers["Authorization"] = self.auth
        request = urllib.request.Request(self.base_url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=600) as response:
                status, head, body = response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as exc:
            status, head, body = exc.code, dict(exc.headers), exc.read()
        if status not in ok:
            raise HttpFailure(method, path, status, body)
        return status, head, body

    def json(self, method: str, path: str, **kwargs) -> dict:
        """The JSON answer of a call (``{}`` for an empty body)."""
        return json.loads(self.call(method, path, **kwargs)[2] or b"{}")

    def array(self, path: str, token: str | None = None) -> tuple[np.ndarray, dict]:
        """GET an array in the wire format (deflate, ``X-Shape``, ``X-Dtype``); returns it and the headers."""
        _, head, body = self.call("GET", path, token=token)
        shape = tuple(int(n) for n in head["X-Shape"].split(","))
        dtype = np.dtype(head["X-Dtype"]).newbyteorder("<")
        return np.frombuffer(zlib.decompress(body), dtype=dtype).reshape(shape), head

    def put_labels(self, path: str, labels: np.ndarray, base: int, token: str | None = None, **headers) -> dict:
        """PUT a (2, h, w) int32 label stack on top of revision ``base``; returns the JSON answer."""
        body = zlib.compress(np.ascontiguousarray(labels, dtype="<i4").tobytes(), 1)
        return json.loads(self.call("PUT", path, data=body, token=token, headers={
            "X-Base-Revision": str(base), "X-Dtype": "int32", "X-Shape": ",".join(map(str, labels.shape)),
            "Content-Type": "application/octet-stream", **headers})[2])


class HttpFailure(SimulationError):
    def __init__(self, method: str, path: str, status: int, body: bytes):
        try:
            message = json.loads(body).get("error", "")
        except ValueError:
            message = body[:300].decode(errors="replace")
        super().__init__(f"{method} {path} answered {status}: {message}")
        self.status = status


def multipart(files: list[tuple[str, bytes]]) -> tuple[bytes, str]:
    """A multipart/form-data body with one ``files`` part per (filename, bytes)."""
    boundary = "looplabel-" + secrets.token_hex(12)
    out = io.BytesIO()
    for name, payload in files:
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
                  f"Content-Type: application/octet-stream\r\n\r\n".encode())
        out.write(payload + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


@contextmanager
def serve(app):
    """Serve ``app`` on a free local port in a thread; yields its base URL."""
    from werkzeug.serving import WSGIRequestHandler, make_server

    class QuietHandler(WSGIRequestHandler):
        def log_request(self, *args, **kwargs):  # thousands of API calls: no access log
            pass

    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="looplabel-simulate-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


# --- jobs -----------------------------------------------------------------------------------------
@contextmanager
def _as_process_runtime(runtime):
    """Let RQ jobs run in this process use ``runtime`` (run_job asks for the process runtime)."""
    import backend.runtime as runtime_module

    with runtime_module._lock:
        previous, runtime_module._process_runtime = runtime_module._process_runtime, runtime
    try:
        yield
    finally:
        with runtime_module._lock:
            runtime_module._process_runtime = previous


def drain_jobs(runtime, after_job_id: int = 0) -> None:
    """Run every queued job (and the jobs they enqueue) to the end.

    With the in-process queue this waits for its thread; with RQ it runs burst SimpleWorkers on
    both queues here. Raises :class:`SimulationError` if a job newer than ``after_job_id`` failed.
    """
    queue = runtime.queue
    if hasattr(queue, "join"):
        queue.join()
    else:
        from rq import SimpleWorker

        with _as_process_runtime(runtime):
            for _ in range(100):
                if queue.depth("default") + queue.depth("gpu") == 0:
                    break
                SimpleWorker([queue.rq_queue("default"), queue.rq_queue("gpu")], connection=queue.connection
                             ).work(burst=True, with_scheduler=False, logging_level="WARNING")
    with runtime.db.session() as s:
        failed = s.scalars(select(Job).where(Job.id > after_job_id, Job.status == "failed").order_by(Job.id)).first()
        if failed is not None:
            lines = [ln for ln in (failed.error or failed.message or "").strip().splitlines()
                     if ln.strip() and not ln.startswith(("(Background", "[SQL", "[parameters"))]
            raise SimulationError(f"job {failed.kind} (id {failed.id}) failed: {lines[-1] if lines else 'no message'}")


# --- the simulated people -------------------------------------------------------------------------
@dataclass
class TaskRecord:
    """One submitted task, as the simulation saw it."""

    round: int
    crop_id: int
    assignment_id: int
    worker: str
    profile: str
    gold: bool
    from_prediction: bool  # False for a crop a review sent back
    changed_pixels: int
    changed_cells: int
    seconds: float
    tool_calls: int
    gold_gain: float | None = None   # gold crops: score(submitted) - score(start) against the gold labels
    gold_score: float | None = None  # the platform's, from the Assignment row after the round
    agreement: float | None = None   # with the consensus, from the Assignment row after the round
    true_cells: int | None = None    # cells of the crop's truth, summed over features (as changed_cells is)
    start_errors: int | None = None  # error units of the labels the task opened with against the truth (both features)


@dataclass
class SimAnnotator:
    worker: str
    profile: crowd.AnnotatorProfile
    rng: np.random.Generator
    blocked: bool = False


class Oracle:
    """Ground truth the simulated people look at: what the import stored, else the truth the
    simulation kept from an image it uploaded without (by the image's name); read, never written."""

    def __init__(self, runtime):
        self.runtime = runtime
        self._truths: dict[int, np.ndarray] = {}
        self.kept: dict[str, np.ndarray] = {}  # image name -> (2, H, W) truth the product was not given

    def image(self, image_id: int) -> np.ndarray:
        """(2, H, W) int32 ground truth of an image."""
        if image_id not in self._truths:
            from backend.services import labels_io

            with self.runtime.db.session() as s:
                image = s.get(Image, image_id)
                key, name = image.ground_truth_key, image.name
            if key:
                self._truths[image_id] = labels_io.get_labels(self.runtime.store, key)
            elif name in self.kept:
                self._truths[image_id] = self.kept[name]
            else:
                raise SimulationError(f"image {image_id} has no ground truth; the simulation needs it")
        return self._truths[image_id]

    def crop(self, crop_id: int) -> tuple[np.ndarray, bool]:
        """(2, h, w) int32 ground truth of a crop, and whether it is a gold crop."""
        with self.runtime.db.session() as s:
            c = s.get(Crop, crop_id)
            image_id, gold, (y0, x0, y1, x1) = c.image_id, bool(c.is_gold), (c.y0, c.x0, c.y1, c.x1)
        return self.image(image_id)[:, y0:y1, x0:x1], gold


def _box_b64(box: np.ndarray) -> str:
    return base64.b64encode(zlib.compress(np.ascontiguousarray(box, "<i4").tobytes(), 1)).decode()


def _answer_box(answer: dict) -> tuple[tuple[slice, slice], np.ndarray]:
    """Where a server tool's changed box goes (crop slices) and its (h, w) int32 labels."""
    y0, x0, y1, x1 = answer["bbox"]
    raw = zlib.decompress(base64.b64decode(answer["labels"]))
    return (slice(y0, y1), slice(x0, x1)), np.frombuffer(raw, "<i4").reshape(y1 - y0, x1 - x0)


class Simulation:
    """One run of the simulated loop over a served app; :meth:`run` returns the report."""

    def __init__(self, runtime, config: SimulationConfig, progress: Callable[[str], None] | None = None):
        self.runtime, self.config = runtime, config
        self.say = progress or (lambda message: log.info("%s", message))
        self.rng = np.random.default_rng(config.seed)
        self.annotators = [SimAnnotator(f"sim-{p.name}-{i + 1}", p, np.random.default_rng([config.seed, i]))
                           for i, p in enumerate(crowd.parse_profiles(config.profiles))]
        self.oracle = Oracle(runtime)
        self.records: list[TaskRecord] = []
        with runtime.db.session() as s:
            self.first_job = s.scalar(select(func.max(Job.id))) or 0

    def run(self) -> dict:
        from backend.app import build_app
        from backend.services.users import create_user

        started, config = time.perf_counter(), self.config
        tag = secrets.token_hex(3)
        passwords = {role: secrets.token_urlsafe(16) for role in ("admin", "reviewer")}
        with self.runtime.db.session() as s:
            for role, password in passwords.items():
                create_user(s, f"sim-{role}-{tag}", role, password)
        # the whole simulated crowd leases from this one address: lift the per-address and
        # per-platform lease limits for this run (a real crowd spreads over addresses)
        self.runtime.settings = self.runtime.settings.with_overrides(
            leases_per_address_per_min=10**6, leases_per_platform_per_min=10**6)
        app = build_app(runtime=self.runtime)
        held_out = HeldOutTest(config)
        rounds = []
        with serve(app) as url:
            self.admin = HttpClient(url, (f"sim-admin-{tag}", passwords["admin"]))
            self.reviewer = HttpClient(url, (f"sim-reviewer-{tag}", passwords["reviewer"]))
            self.crowd = HttpClient(url)
            names = config.source.channel_names
            project = self.admin.json("POST", "/api/projects", json_body={
                "name": config.project_name or f"simulation-{config.seed}-{tag}", "channels": names,
                "crop_size": config.crop_size, "annotators_per_crop": config.annotators_per_crop,
                "gold_fraction": config.gold_fraction, "auto_promote": True,
                "instructions": "Simulated crowd: correct every whole-cell and nuclear outline."})
            self.pid = project["id"]
            self.say(f"project {project['name']!r} (id {self.pid}): {len(self.annotators)} annotators "
                     f"({config.profiles}), {config.annotators_per_crop} per crop, {config.source.describe()}")
            for r in range(config.rounds):
                rounds.append(self.round(r, held_out))
            dashboard = self.admin.json("GET", f"/api/projects/{self.pid}/dashboard")["rounds"]
            self.admin.call("GET", f"/projects/{self.pid}/dashboard")  # the console page renders them too
            models = self.admin.json("GET", f"/api/projects/{self.pid}/models")["models"]
        promoted = next((m["id"] for m in models if m["status"] == "promoted"), None)
        final = held_out.f1(self.runtime, promoted, self.round_zero_predictor())
        report = build_report(config, project, rounds, self.records, final, dashboard,
                              time.perf_counter() - started)
        report["files"] = [str(p) for p in write_report(report, config.out_dir)]
        self.say(f"done in {report['minutes']} min: held-out F1 by round {_fmts(report['f1_by_round'])}, "
                 f"after the last training {_fmt(report['f1_after_last_training'])}; report in {config.out_dir}")
        return report

    # --- one round ----------------------------------------------------------------------------
    def round(self, r: int, held_out: "HeldOutTest") -> dict:
        t0, config = time.perf_counter(), self.config
        self.upload_images(r)
        rnd = {**self.admin.json("POST", f"/api/projects/{self.pid}/rounds", json_body={"policy": config.policy}),
               "project_id": self.pid}
        drain_jobs(self.runtime, self.first_job)
        with self.runtime.db.session() as s:
            predictor = s.get(Round, rnd["id"]).predictor or "baseline"
        f1 = held_out.f1(self.runtime, rnd["model_version_id"], predictor)
        self.say(f"round {r}: {config.images} images predicted by {predictor} "
                 f"(held-out F1 {_fmt(f1['f1'])}) and cropped")
        records = self.crowd_pass(r)
        review = {"approved": 0, "fixed_images": 0, "cells_fixed": 0, "rejected_crops": 0, "scores_before": []}
        rejected: set[int] = set()
        for attempt in range(3):  # an image is sent back at most once; the last pass fixes and approves
            if not self.review_pass(attempt < 2, rejected, review):
                break
            records += self.crowd_pass(r)
        self.review_pass(False, rejected, review)
        self.check_all_approved(r)
        approved_f1 = self.approved_label_f1(rnd["id"])
        review["approved_label_f1"], review["approved_label_nuclear_f1"] = approved_f1["f1"], approved_f1["nuclear_f1"]
        spending = self.crop_figures(rnd["id"], records)
        caught = self.catch_spammers(self.records + records)
        self.say(f"round {r}: {len(records)} submissions, {review['rejected_crops']} crop(s) sent back, "
                 f"{review['cells_fixed']} cell(s) fixed by the reviewer, "
                 f"flagged {caught['flagged'] or 'nobody'}; training")
        training = self.train()
        if training["status"] in ("ready", "promoted"):  # the truth's verdict on the candidate, beside the rule's
            candidate = held_out.f1(self.runtime, training["model_version_id"])
            training["f1_heldout"], training["nuclear_f1_heldout"] = candidate["f1"], candidate["nuclear_f1"]
        held = training.get("held_out") or {}
        self.say(f"round {r}: model v{training['version']}: F1 {_fmt(training['f1_test_split'])} on "
                 f"{len(held.get('images') or [])} held-out image(s) ({training.get('evaluated_on')}; "
                 f"{len(held.get('ground_truth') or [])} on ground truth, the others on approved labels; "
                 f"{len(held.get('left_out') or {})} left out: drawn by the reference), "
                 f"reference {training['reference_source']} {_fmt(training['reference_f1'])}; score "
                 f"{_fmt(training['score_test_split'])} vs {_fmt(training['reference_score'])}; held-out F1 "
                 f"{_fmt(training.get('f1_heldout'))}, "
                 + (f"promoted by the {training['promoted_by']}" if training["promoted_by"] else "not promoted"))
        self.records += records
        summary = round_summary(r, rnd, f1, records, review, caught, training, self.runtime, time.perf_counter() - t0)
        return {**summary, **spending}

    def approved_label_f1(self, round_id: int) -> dict:
        """F1 of the labels approved this round against the truth, pooled over images: ``f1``
        (whole-cell) and ``nuclear_f1`` (what a fine-tune learns from, beside what it is judged on)."""
        from backend.core.metrics import aggregate, object_metrics
        from backend.models import Stitch
        from backend.services import labels_io

        with self.runtime.db.session() as s:
            images = list(s.scalars(select(Stitch.image_id).where(Stitch.round_id == round_id,
                                                                 Stitch.status == "approved")))
            keys = {i: s.get(Image, i).labels_key for i in images}
        pairs = [(self.oracle.image(i), labels_io.get_labels(self.runtime.store, k)) for i, k in keys.items() if k]
        out = {}
        for f, name in enumerate(("f1", "nuclear_f1")):
            results = [object_metrics(truth[f], approved[f]) for truth, approved in pairs]
            out[name] = round(float(aggregate(results).f1), 4) if results else None
        return out

    def crop_figures(self, round_id: int, records: list[TaskRecord]) -> dict:
        """Crowd crops spent this round, and each crowd crop's score against the cells the honest
        annotators changed in it (from the prediction)."""
        with self.runtime.db.session() as s:
            crops = list(s.scalars(select(Crop).where(Crop.round_id == round_id, Crop.is_gold.is_(False))))
            scores = {c.id: (c.expected_fixes, c.uncertainty) for c in crops}
            crowd_crops = sum(c.source == "crowd" for c in crops)
            model_crops = sum(c.source == "model" for c in crops)
        changed: dict[int, list[int]] = {}
        for rec in records:
            if rec.from_prediction and not rec.gold and not crowd.PROFILES[rec.profile].is_spammer:
                changed.setdefault(rec.crop_id, []).append(rec.changed_cells)
        pairs = [(scores[c][0], float(np.mean(v))) for c, v in changed.items()
                 if c in scores and scores[c][0] is not None]
        return {"crowd_crops": crowd_crops, "model_crops": model_crops, "score_vs_changed": pairs}

    def round_zero_predictor(self) -> str:
        """What predicts while no version is promoted (the project's round-0 choice)."""
        with self.runtime.db.session() as s:
            choice = s.get(Project, self.pid).predictor_choice or {}
        return choice.get("predictor", "baseline")

    def upload_images(self, r: int) -> None:
        """This round's images (TissueNet NPZ with ground truth), through the admin API."""
        files = self.config.source.round_files(r)
        if self.config.truth_images is not None:
            files = [(name, blob if k < self.config.truth_images else self.without_truth(name, blob))
                     for k, (name, blob) in enumerate(files)]
        body, content_type = multipart(files)
        self.admin.call("POST", f"/api/projects/{self.pid}/images", data=body, headers={"Content-Type": content_type})

    def without_truth(self, name: str, blob: bytes) -> bytes:
        """An NPZ upload without its truth ``y``, which the oracle keeps under the image's name."""
        with np.load(io.BytesIO(blob)) as arrays:
            X, y = arrays["X"], arrays["y"]
        self.oracle.kept[name] = np.ascontiguousarray(np.moveaxis(y, -1, 0), dtype=np.int32)  # imported as ``name``
        buf = io.BytesIO()
        np.savez_compressed(buf, X=X)
        return buf.getvalue()

    def check_all_approved(self, r: int) -> None:
        with self.runtime.db.session() as s:
            waiting = [(i.name, i.status) for i in s.scalars(
                select(Image).where(Image.project_id == self.pid, Image.status != "approved"))]
            open_crops = s.scalar(select(func.count(Crop.id)).join(Image, Image.id == Crop.image_id)
                                  .where(Image.project_id == self.pid, Crop.status != "fused"))
        if waiting:
            raise SimulationError(f"round {r}: images {waiting} are not approved after the review passes "
                                  f"({open_crops} crop(s) still waiting for annotations)")

    # --- the crowd ----------------------------------------------------------------------------
    def crowd_pass(self, r: int) -> list[TaskRecord]:
        """Every annotator takes tasks in turn until none is left for anyone; then jobs are drained."""
        records = []
        progressed = True
        while progressed:
            progressed = False
            for index in self.rng.permutation(len(self.annotators)):
                who = self.annotators[index]
                record = None if who.blocked else self.annotate_one(who, r)
                if record is not None:
                    records.append(record)
                    progressed = True
        drain_jobs(self.runtime, self.first_job)
        return records

    def annotate_one(self, who: SimAnnotator, r: int) -> TaskRecord | None:
        """Lease, fetch, correct (server tool + brush edits), save revisions and submit one task."""
        from backend.services.dashboard import correction_counts
        from worker.simulation_data import cell_count

        http = self.crowd
        try:
            lease = http.json("POST", f"/api/crowd/{self.pid}/lease", json_body={"params": {"worker": who.worker}})
        except HttpFailure as exc:
            if exc.status not in (403, 404):  # 403: blocked; 404: no task left for this worker
                raise
            who.blocked = who.blocked or exc.status == 403
            return None
        token, task = lease["token"], lease["task"]
        base = f"/api/crowd/crops/{task['crop_id']}"
        http.array(f"{base}/channels", token=token)  # what the editor shows; the simulated eye uses the truth
        start, head = http.array(f"{base}/labels", token=token)
        start, revision = start.astype(np.int32), int(head["X-Revision"])
        truth, gold = self.oracle.crop(task["crop_id"])
        labels, tool_calls = self.split_merged_cells(who, base, token, start, truth)
        labels, add_calls = self.add_missed_cells(who, base, token, labels, truth)
        tool_calls += add_calls
        correction = crowd.correct_crop(labels, truth, who.profile, who.rng)
        checkpoints = correction.checkpoints or ([labels] if not np.array_equal(labels, start) else [])
        edits = correction.strokes + tool_calls
        for n, checkpoint in enumerate(checkpoints, start=1):  # autosaves, then the final state
            revision = http.put_labels(f"{base}/labels", checkpoint, revision, token=token,
                                       **{"X-Edit-Count": str(max(1, edits * n // len(checkpoints)))})["revision"]
        seconds = crowd.active_seconds(who.profile, correction.fixed_cells, tool_calls, who.rng)
        http.json("POST", f"{base}/submit", json_body={"active_seconds": round(seconds, 2), "edit_count": edits},
                  token=token)
        final = checkpoints[-1] if checkpoints else start
        pixels, cells = correction_counts(start, final)
        return TaskRecord(r, task["crop_id"], int(task["assignment_id"]), who.worker, who.profile.name, gold,
                          not task.get("reopen_reason"), pixels, cells, float(seconds), tool_calls,
                          gold_gain=crowd.gold_gain(start, final, truth) if gold else None,
                          true_cells=sum(cell_count(t) for t in truth),
                          start_errors=crowd.cells_to_fix(start, truth))

    def split_merged_cells(self, who: SimAnnotator, base: str, token: str, labels: np.ndarray,
                           truth: np.ndarray) -> tuple[np.ndarray, int]:
        """Call the server's watershed split on (up to three) merged whole cells, as the editor would."""
        labels, calls = labels.copy(), 0
        for request in crowd.merged_cells(labels[0], truth[0])[:3]:
            if who.rng.random() >= who.profile.tool_probability:
                continue
            y0, x0, y1, x1 = request.bbox
            body = {"feature": 0, "bbox": list(request.bbox), "label": request.label, "next_id": int(labels.max()) + 1,
                    "seeds": [list(p) for p in request.seeds], "labels": _box_b64(labels[0, y0:y1, x0:x1])}
            calls += 1
            try:
                out = self.crowd.json("POST", f"{base}/tools/watershed_split", json_body=body, token=token)
            except HttpFailure as exc:
                if exc.status != 400:  # 400: the tool refused these seeds; the brush will do
                    raise
                continue
            if out.get("changed"):
                where, box = _answer_box(out)
                labels[0][where] = box
        return labels, calls

    def add_missed_cells(self, who: SimAnnotator, base: str, token: str, labels: np.ndarray,
                         truth: np.ndarray) -> tuple[np.ndarray, int]:
        """Click "add a cell here" in missed cells, as the editor would; keep a cell only when it is
        close to the truth (IoU >= 0.7): a refusal (400) or a poor outline is left to the brush."""
        labels, calls = labels.copy(), 0
        for f in range(2):
            for request in crowd.missed_cells(labels[f], truth[f]):
                if who.rng.random() >= who.profile.tool_probability:
                    continue
                y0, x0, y1, x1 = request.bbox
                next_id = int(labels.max()) + 1
                body = {"feature": f, "bbox": list(request.bbox), "point": list(request.point), "next_id": next_id,
                        "labels": _box_b64(labels[f, y0:y1, x0:x1])}
                calls += 1
                try:
                    out = self.crowd.json("POST", f"{base}/tools/add_cell", json_body=body, token=token)
                except HttpFailure as exc:
                    if exc.status != 400:  # 400: no cell there by the maps; the brush will do
                        raise
                    continue
                where, box = _answer_box(out)
                added = labels[f].copy()
                added[where] = box
                if crowd.accepts_added_cell(added == next_id, truth[f] == request.truth_id):
                    labels[f] = added
        return labels, calls

    # --- the reviewer and the admin -----------------------------------------------------------
    def review_pass(self, allow_reject: bool, rejected_before: set[int], stats: dict) -> int:
        """Review every stitched image waiting; returns how many crops were sent back to the crowd."""
        http, config, sent_back = self.reviewer, self.config, 0
        for item in http.json("GET", f"/api/review/queue?project_id={self.pid}")["queue"]:
            sid = item["stitch_id"]
            info = http.json("GET", f"/api/review/stitches/{sid}")
            labels, head = http.array(f"/api/review/stitches/{sid}/labels")
            labels, revision = labels.astype(np.int32), int(head["X-Revision"])
            truth = self.oracle.image(info["image_id"])
            score = crowd.score_labels(labels, truth)
            stats["scores_before"].append(score.value)
            if score.value < config.approve_f1 and allow_reject and info["image_id"] not in rejected_before:
                crops = [c for c in info["crops"] if not c["is_gold"]]
                redo = crowd.crops_to_redo(labels, truth, [tuple(c["bbox"]) for c in crops], config.redo_f1)
                if redo:
                    ids = [crops[i]["id"] for i, _ in redo]
                    reason = (f"{len(ids)} crop(s) match few of the cells (F1 down to {min(v for _, v in redo):.2f}): "
                              "outline every cell and its nucleus; do not submit an empty or untouched crop")
                    http.json("POST", f"/api/review/stitches/{sid}/reject",
                              json_body={"reason": reason, "crop_ids": ids})
                    rejected_before.add(info["image_id"])
                    stats["rejected_crops"] += len(ids)
                    sent_back += len(ids)
                    continue
            if score.value < config.approve_f1:
                fixed, n_fixed = crowd.fix_worst_cells(labels, truth, config.approve_f1)
                revision = http.put_labels(f"/api/review/stitches/{sid}/labels", fixed, revision)["revision"]
                stats["cells_fixed"] += n_fixed
                stats["fixed_images"] += 1
            http.json("POST", f"/api/review/stitches/{sid}/approve", json_body={"revision": revision})
            stats["approved"] += 1
        return sent_back

    def catch_spammers(self, records: list[TaskRecord]) -> dict:
        """The admin's quality check at the end of a round: workers who do not improve gold crops
        are blocked through the admin API, while enough workers remain to give every crop its k
        annotations (the product already blocks those who fail their first gold tasks, see
        :data:`backend.services.tasks.QUALIFYING_GOLD`; this catches a worker who passed them). The
        gains are what the platform can compute from its gold labels, starting labels and submissions."""
        gains: dict[str, list[float]] = {}
        for rec in records:
            if rec.gold_gain is not None:
                gains.setdefault(rec.worker, []).append(rec.gold_gain)
        by_worker = {a.worker: a for a in self.annotators}
        flagged = [w for w in crowd.flag_annotators(gains) if not by_worker[w].blocked]
        rows = {r["worker_id"]: r for r in self.admin.json("GET", f"/api/projects/{self.pid}/annotators")["annotators"]}
        blocked = []
        for worker in flagged:
            if sum(not a.blocked for a in self.annotators) - 1 < self.config.annotators_per_crop:
                break
            self.admin.json("POST", f"/api/projects/{self.pid}/annotators/{rows[worker]['id']}/block")
            by_worker[worker].blocked = True
            blocked.append(worker)
        spammers = [a for a in self.annotators if a.profile.is_spammer]
        return {"mean_gold_gain": {w: round(float(np.mean(v)), 4) for w, v in sorted(gains.items())},
                "platform_table": {w: {k: r[k] for k in ("tasks_done", "gold_accuracy", "agreement", "median_seconds",
                                                         "median_edits", "blocked")} for w, r in sorted(rows.items())},
                "flagged": flagged, "blocked": blocked,
                "false_alarms": [w for w in flagged if not by_worker[w].profile.is_spammer],
                "spammer_caught": bool(spammers) and all(a.blocked or a.worker in flagged for a in spammers)}

    def training_steps(self) -> int:
        """Steps of the next training: ``steps_per_image`` per approved image, else ``train_steps``."""
        if not self.config.steps_per_image:
            return self.config.train_steps
        with self.runtime.db.session() as s:
            approved = s.scalar(select(func.count(Image.id)).where(Image.project_id == self.pid,
                                                                    Image.status == "approved"))
        return int(min(10**6, max(1, self.config.steps_per_image * approved)))

    def train(self) -> dict:
        """Retrain through the admin API, wait for it, and promote when the policy says so."""
        steps = self.training_steps()
        self.admin.json("POST", f"/api/projects/{self.pid}/retrain",
                        json_body={"steps": steps, "backbone": self.config.backbone})
        drain_jobs(self.runtime, self.first_job)
        newest = self.admin.json("GET", f"/api/projects/{self.pid}/models")["models"][0]
        promoted_by = "rule" if newest["status"] == "promoted" else None
        if newest["status"] == "ready" and self.config.promotion == "always":
            newest = self.admin.json("POST", f"/api/projects/{self.pid}/models/{newest['id']}/promote")
            promoted_by = "admin"
        metrics = newest.get("metrics") or {}
        reference = metrics.get("reference") or {}
        return {"model_version_id": newest["id"], "version": newest["version"], "status": newest["status"],
                "promoted_by": promoted_by, "f1_test_split": metrics.get("f1"), "reference_f1": reference.get("f1"),
                "score_test_split": metrics.get("headline"), "reference_score": reference.get("headline"),
                "nuclear_f1_test_split": metrics.get("nuclear_f1"), "reference_nuclear_f1": reference.get("nuclear_f1"),
                "reference_source": reference.get("source"), "train_seconds": metrics.get("train_seconds"),
                "steps": steps,
                "evaluated_on": metrics.get("evaluated_on"), "held_out": metrics.get("held_out")}


def run_simulation(runtime, config: SimulationConfig, progress: Callable[[str], None] | None = None) -> dict:
    """Run the simulated loop on ``runtime`` (a migrated database, a store and a queue).

    Parameters
    ----------
    runtime : backend.runtime.Runtime
        With the in-process queue the jobs run in its thread; with RQ, burst workers run here.
    config : SimulationConfig
    progress : callable or None
        Called with one line of text per step (default: the module's logger).

    Returns
    -------
    dict
        The report (see :func:`build_report`), also written to ``config.out_dir``:
        ``report.json``, one SVG per learning curve and ``learning_curves.png``.

    Raises
    ------
    SimulationError
        A job failed, an API call answered an error, or an image could not be approved.
    """
    return Simulation(runtime, config, progress).run()


# --- models ---------------------------------------------------------------------------------------
class HeldOutTest:
    """Test images no round ever sees: the learning curve's fixed yardstick."""

    def __init__(self, config: SimulationConfig):
        self.X, self.y = config.source.test_set()
        self._cache: dict = {}

    def f1(self, runtime, model_version_id: int | None, predictor_name: str = "baseline") -> dict:
        """``{"f1", "nuclear_f1"}`` of what predicted a round on the test images, through the
        product's predict path: a model version, else the generalist or the classical baseline."""
        if self.X is None:
            return {"f1": None, "nuclear_f1": None, "cells_to_fix": None}
        cache_key = model_version_id if model_version_id is not None else predictor_name
        if cache_key not in self._cache:
            from backend.models import ModelVersion
            from worker.predict import BASELINE, generalist_predictor, predict_image, version_predictor
            from worker.training import evaluate_predictions

            if model_version_id is not None:
                with runtime.db.session() as s:
                    predictor = version_predictor(s.get(ModelVersion, model_version_id), runtime.store)
            elif predictor_name == "generalist":
                predictor = generalist_predictor()
            else:
                predictor = BASELINE
            predictions = [predict_image(predictor, np.moveaxis(x, -1, 0)) for x in self.X]
            m = evaluate_predictions(lambda img, it=iter(predictions): next(it), self.X, self.y)
            # what an honest annotator would have to fix on these images (both features), per image
            to_fix = [crowd.cells_to_fix(p, np.moveaxis(t, -1, 0))
                      for p, t in zip(predictions, self.y)]
            self._cache[cache_key] = {"f1": m["f1"], "nuclear_f1": m["nuclear_f1"], "predictor": predictor.name,
                                      "cells_to_fix": _mean(to_fix)}
        return self._cache[cache_key]


# --- report ---------------------------------------------------------------------------------------
def _mean(values) -> float | None:
    values = [float(v) for v in values if v is not None]
    return round(float(np.mean(values)), 4) if values else None


def _per_100(changed: list[int], cells: list[int | None]) -> float | None:
    """Changed cells per 100 cells of the truth over the same crops: the share of a crop's cells an
    annotator had to fix, which does not grow with how many cells the round's images hold."""
    pairs = [(c, n) for c, n in zip(changed, cells) if n is not None]
    total = sum(n for _, n in pairs)
    return round(100.0 * sum(c for c, _ in pairs) / total, 3) if total else None


def _per_crop(records: list[TaskRecord], attribute: str) -> list:
    """One value per crop the crowd opened from the prediction (not gold): a crop's figure counts
    once however many annotators took it."""
    return list({x.crop_id: getattr(x, attribute) for x in records if x.from_prediction and not x.gold}.values())


def _spearman(pairs: list[tuple[float, float]]) -> float | None:
    """Spearman rank correlation of (score, corrections) pairs (None under 3 pairs or no spread)."""
    if len(pairs) < 3:
        return None
    from scipy.stats import spearmanr

    x, y = np.array(pairs, dtype=np.float64).T
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    return round(float(spearmanr(x, y).statistic), 4)


def _median(values) -> float | None:
    return round(float(np.median(values)), 2) if len(values) else None


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _fmts(values) -> str:
    return "[" + ", ".join(_fmt(v) for v in values) + "]"


def _by_profile(records: list[TaskRecord], attribute: str, how=_mean) -> dict:
    out: dict[str, list] = {}
    for rec in records:
        value = getattr(rec, attribute)
        if value is not None:
            out.setdefault(rec.profile, []).append(value)
    return {name: how(values) for name, values in sorted(out.items())}


def round_summary(r: int, rnd: dict, f1: dict, records: list[TaskRecord], review: dict, caught: dict,
                  training: dict, runtime, seconds: float) -> dict:
    """Figures of one round (fills each record's gold score and consensus agreement first)."""
    with runtime.db.session() as s:
        ids = [x.assignment_id for x in records]
        rows = {a.id: a for a in s.scalars(select(Assignment).where(Assignment.id.in_(ids)))}
        leased = s.scalar(select(func.count(Assignment.id)).join(Crop, Crop.id == Assignment.crop_id)
                          .join(Image, Image.id == Crop.image_id)
                          .where(Image.project_id == rnd["project_id"], Assignment.status == "leased"))
    for rec in records:
        row = rows.get(rec.assignment_id)
        rec.gold_score = row.gold_score if row is not None else None
        rec.agreement = (row.agreement or {}).get("score") if row is not None else None
    honest = [x for x in records if not crowd.PROFILES[x.profile].is_spammer and x.from_prediction]
    return {
        "round": r, "predictor": f1.get("predictor") or (f"model id {rnd['model_version_id']}"
                                                          if rnd["model_version_id"] else "baseline"),
        "model_version_id": rnd["model_version_id"], "f1_heldout": f1["f1"], "nuclear_f1_heldout": f1["nuclear_f1"],
        "cells_to_fix_heldout": f1.get("cells_to_fix"),
        "submissions": len(records), "gold_submissions": sum(x.gold for x in records),
        "corrections_per_crop": {"changed_cells": _mean([x.changed_cells for x in honest]),
                                 "changed_pixels": _mean([x.changed_pixels for x in honest]),
                                 "submissions": len(honest),
                                 "per_100_cells": _per_100([x.changed_cells for x in honest],
                                                           [x.true_cells for x in honest]),
                                 "by_profile": _by_profile(honest, "changed_cells")},
        "prediction_errors_per_crop": _mean(_per_crop(records, "start_errors")),
        "corrections_all_submissions": {"changed_cells": _mean([x.changed_cells for x in records]),
                                        "changed_pixels": _mean([x.changed_pixels for x in records])},
        "median_seconds_per_crop": _median([x.seconds for x in records]),
        "median_seconds_by_profile": _by_profile(records, "seconds", _median),
        "gold_accuracy_by_profile": _by_profile(records, "gold_score"),
        "gold_gain_by_profile": _by_profile(records, "gold_gain"),
        "agreement_by_profile": _by_profile(records, "agreement"),
        "tool_calls": sum(x.tool_calls for x in records),
        "review": {**{k: v for k, v in review.items() if k != "scores_before"},
                   "median_f1_before_review": _median(review["scores_before"])},
        "annotator_check": caught, "spammer_caught": caught["spammer_caught"],
        "leases_left": int(leased or 0), "training": training, "seconds": round(seconds, 1),
    }


def build_report(config: SimulationConfig, project: dict, rounds: list[dict], records: list[TaskRecord],
                 final_f1: dict, dashboard: list, seconds: float) -> dict:
    """The whole run: per-round figures and the learning curves as lists (one entry per round)."""
    return {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
        "project_id": project["id"], "project_name": project["name"],
        "dashboard_page": f"/projects/{project['id']}/dashboard",
        "f1_by_round": [r["f1_heldout"] for r in rounds],
        "f1_round_zero": rounds[0]["f1_heldout"] if rounds else None,
        "round_zero_predictor": rounds[0]["predictor"] if rounds else None,
        "f1_after_last_training": final_f1["f1"],
        "corrections_per_crop_by_round": [r["corrections_per_crop"]["changed_cells"] for r in rounds],
        "policy": config.policy,
        "crowd_crops_by_round": [r["crowd_crops"] for r in rounds],
        "model_crops_by_round": [r["model_crops"] for r in rounds],
        "approved_label_f1_by_round": [r["review"]["approved_label_f1"] for r in rounds],
        "approved_label_f1": _mean([r["review"]["approved_label_f1"] for r in rounds]),
        "approved_label_nuclear_f1_by_round": [r["review"].get("approved_label_nuclear_f1") for r in rounds],
        "uncertainty_vs_corrections": _spearman([p for r in rounds for p in r["score_vs_changed"]]),
        "nuclear_f1_by_round": [r["nuclear_f1_heldout"] for r in rounds],
        "heldout_cells_to_fix_by_round": [r["cells_to_fix_heldout"] for r in rounds],
        "changed_pixels_per_crop_by_round": [r["corrections_per_crop"]["changed_pixels"] for r in rounds],
        "corrections_per_100_cells_by_round": [r["corrections_per_crop"]["per_100_cells"] for r in rounds],
        "prediction_errors_per_crop_by_round": [r["prediction_errors_per_crop"] for r in rounds],
        "median_seconds_per_crop_by_round": [r["median_seconds_per_crop"] for r in rounds],
        "gold_accuracy_by_profile": _by_profile(records, "gold_score"),
        "gold_gain_by_profile": _by_profile(records, "gold_gain"),
        "agreement_by_profile": _by_profile(records, "agreement"),
        "spammer_caught": any(r["spammer_caught"] for r in rounds),
        "rounds": rounds, "dashboard": dashboard, "minutes": round(seconds / 60, 2),
    }


def _curves(report: dict) -> list[tuple[str, str, str, list[tuple[str, list]]]]:
    """(file stem, title, y label, [(series label, [(round, value)])]) for each learning curve."""
    rounds = report["rounds"]
    xs = [float(r["round"]) for r in rounds]
    profiles = sorted({p for r in rounds for p in r["gold_accuracy_by_profile"]})
    return [
        ("f1_by_round", "Model F1 on held-out images (whole-cell)", "F1",
         [("model that predicted the round", list(zip(xs, report["f1_by_round"]))),
          ("after the last training", [(float(len(rounds)), report["f1_after_last_training"])])]),
        ("corrections_by_round", "Corrections per crop (honest annotators)", "changed cells / crop",
         [("changed cells", list(zip(xs, report["corrections_per_crop_by_round"])))]),
        ("seconds_by_round", "Median simulated time per crop", "seconds / crop",
         [("all annotators", list(zip(xs, report["median_seconds_per_crop_by_round"])))]),
        ("gold_accuracy_by_round", "Gold accuracy by profile", "F1 vs gold",
         [(p, [(x, r["gold_accuracy_by_profile"].get(p)) for x, r in zip(xs, rounds)]) for p in profiles]),
    ]


def write_report(report: dict, out_dir: Path) -> list[Path]:
    """``report.json``, one SVG per learning curve and ``learning_curves.png`` in ``out_dir``."""
    from backend.services.line_chart import Series, line_chart_svg

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [out_dir / "report.json"]
    written[0].write_text(json.dumps(report, indent=2, default=str))
    curves = _curves(report)
    for stem, title, y_label, series in curves:
        path = out_dir / f"{stem}.svg"
        path.write_text(line_chart_svg([Series(label, points) for label, points in series], title=title,
                                       x_label="round", y_label=y_label, chart_id=f"sim-{stem.replace('_', '-')}",
                                       y_range=(0.0, 1.0) if y_label.startswith("F1") else None))
        written.append(path)
    written.append(out_dir / "learning_curves.png")
    written[-1].write_bytes(curves_png([c[1:] for c in curves]))
    return written


def curves_png(panels: list[tuple[str, str, list[tuple[str, list]]]], panel_size=(520, 300)) -> bytes:
    """The learning curves as one PNG, two panels per row (Pillow)."""
    from PIL import Image as PILImage
    from PIL import ImageDraw, ImageFont

    colours = ["#2457d6", "#d2691e", "#1a7f37", "#8a3ffc", "#c0362c"]
    pw, ph = panel_size
    cols = 2
    rows = (len(panels) + cols - 1) // cols
    canvas = PILImage.new("RGB", (pw * cols, ph * rows), "white")
    draw = ImageDraw.Draw(canvas)
    try:
        font = ImageFont.load_default(size=13)
    except TypeError:  # Pillow without FreeType sizes
        font = ImageFont.load_default()
    for index, (title, y_label, series) in enumerate(panels):
        ox, oy = (index % cols) * pw, (index // cols) * ph
        left, top, right, bottom = ox + 62, oy + 34, ox + pw - 16, oy + ph - 40
        draw.text((ox + 12, oy + 8), title, fill="#1d2330", font=font)
        points = [(x, y) for _, pts in series for x, y in pts if y is not None]
        draw.rectangle((left, top, right, bottom), outline="#c8ccd4")
        if not points:
            draw.text((left + 10, (top + bottom) // 2), "no data", fill="#5b6475", font=font)
            continue
        x_lo, x_hi = min(x for x, _ in points), max(x for x, _ in points)
        y_lo, y_hi = (0.0, 1.0) if y_label.startswith("F1") else (0.0, max(y for _, y in points) * 1.1 or 1.0)
        x_hi = x_hi if x_hi > x_lo else x_lo + 1

        def at(x, y):
            return (left + (x - x_lo) / (x_hi - x_lo) * (right - left - 20) + 10,
                    bottom - (y - y_lo) / (y_hi - y_lo) * (bottom - top))

        for t in np.linspace(y_lo, y_hi, 5):
            _, py = at(x_lo, t)
            draw.line((left, py, right, py), fill="#eef0f3")
            draw.text((ox + 8, py - 7), f"{t:.2f}" if y_hi <= 1.5 else f"{t:.0f}", fill="#5b6475", font=font)
        for x in sorted({x for x, _ in points}):
            px, _ = at(x, y_lo)
            draw.text((px - 3, bottom + 4), f"{x:.0f}", fill="#5b6475", font=font)
        draw.text((left, bottom + 20), f"round  ({y_label})", fill="#5b6475", font=font)
        for n, (label, pts) in enumerate(series):
            colour = colours[n % len(colours)]
            xy = [at(x, y) for x, y in pts if y is not None]
            if len(xy) > 1:
                draw.line(xy, fill=colour, width=2)
            for px, py in xy:
                draw.ellipse((px - 3, py - 3, px + 3, py + 3), fill=colour)
            if len(series) > 1:
                width = max(draw.textlength(name, font=font) for name, _ in series)
                draw.text((right - 8 - width, top + 6 + 15 * n), label, fill=colour, font=font)
    buf = io.BytesIO()
    canvas.save(buf, format="PNG")
    return buf.getvalue()


