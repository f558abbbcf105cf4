"""The whole loop through the admin console, the crowd API and the review page, in Chromium.

An admin logs in, creates a project, uploads two synthetic TIFFs through the images page (each
with its progress bar) and starts round 0 from the rounds page; the in-process job queue predicts
(classical baseline) and crops them. Crowd workers then lease, edit and submit every crop over
the crowd HTTP API; with one annotator per crop and no gold, each submission fuses its crop and
the images are stitched. A reviewer logs in, finds both images in the review queue, edits one
cell of the first and approves it, and sends two crops of the second back with a reason.

Screenshots for a person to look at go to ``tests/e2e/screenshots/`` (git-ignored):
``console_dashboard.png``, ``console_review_overlays.png``, ``console_annotators.png``.
"""

from __future__ import annotations

import json
import time
import urllib.request
import zlib
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from tests.e2e.test_review import BRUSH_RADIUS, ReviewPage, new_page, painted_row, quiet_row

pytestmark = [pytest.mark.browser, pytest.mark.postgres, pytest.mark.slow]

ADMIN, REVIEWER = "ada", "rita"
PASSWORD = "review-pass-1"  # what ReviewPage.login types
SIZE, CROP, OVERLAP = 300, 160, 16
WORKERS = ("w0", "w1", "w2")
REASON = "Cells along the seam are merged; split them."


# --- helpers -------------------------------------------------------------------------------------------
def write_tiffs(folder: Path) -> list[Path]:
    """Two small 2-channel synthetic tissue TIFFs, (C, H, W) float32."""
    import tifffile

    from backend.core.synthetic import synthetic_tissue

    paths = []
    for i, seed in enumerate((21, 22)):
        tissue = synthetic_tissue(SIZE, SIZE, n_channels=2, seed=seed)
        path = folder / f"tissue-{i}.tif"
        tifffile.imwrite(path, np.ascontiguousarray(tissue.image, dtype=np.float32))
        paths.append(path)
    return paths


def http(method: str, url: str, *, body: bytes | None = None, headers: dict | None = None,
         json_body: object = None) -> tuple[int, dict, bytes]:
    """One request with urllib; returns (status, headers, body) and never raises on 4xx/5xx."""
    headers = dict(headers or {})
    if json_body is not None:
        body = json.dumps(json_body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def wait_for(check, timeout_s: float, what: str, interval_s: float = 0.25):
    """Poll ``check()`` until it returns something truthy."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(interval_s)


def jobs_done(runtime, project_id: int, kinds: tuple[str, ...]) -> bool:
    """Whether every job of ``kinds`` has finished (a failed one fails the test with its error)."""
    from backend.models import Job

    with runtime.db.session() as s:
        jobs = s.scalars(select(Job).where(Job.project_id == project_id, Job.kind.in_(kinds))).all()
        failed = [(j.kind, j.args, j.error) for j in jobs if j.status == "failed"]
        assert not failed, f"jobs failed: {failed}"
        return bool(jobs) and all(j.status == "finished" for j in jobs)


def crowd_annotate(base_url: str, project_id: int, n_crops: int) -> dict[int, tuple[np.ndarray, int]]:
    """Lease every crop over the crowd API, save one edited revision and submit it.

    Each submission adds a small new cell in the crop's interior (away from the overlaps). Returns
    (submitted labels, changed pixels the server counted) by crop id.
    """
    submitted = {}
    for n in range(n_crops):
        worker = WORKERS[n % len(WORKERS)]
        status, _, raw = http("POST", f"{base_url}/api/crowd/{project_id}/lease",
                              json_body={"params": {"worker": worker}})
        assert status == 200, raw
        leased = json.loads(raw)
        assert not leased["preview"], leased
        crop_id, token = leased["task"]["crop_id"], leased["token"]
        assert crop_id not in submitted
        auth = {"Authorization": f"Bearer {token}"}

        status, headers, raw = http("GET", f"{base_url}/api/crowd/crops/{crop_id}/labels", headers=auth)
        assert status == 200, raw
        shape = tuple(int(v) for v in headers["X-Shape"].split(","))
        labels = np.frombuffer(zlib.decompress(raw), dtype="<i4").reshape(shape).copy()
        base = int(headers["X-Revision"])

        h, w = shape[1:]
        cy, cx = h // 2, w // 2
        new_id = int(labels.max()) + 1
        labels[0, cy - 4:cy + 4, cx - 4:cx + 4] = new_id  # a cell the model "missed"
        status, _, raw = http(
            "PUT", f"{base_url}/api/crowd/crops/{crop_id}/labels",
            body=zlib.compress(np.ascontiguousarray(labels, dtype="<i4").tobytes()),
            headers={**auth, "X-Base-Revision": str(base), "X-Dtype": "int32",
                     "X-Shape": ",".join(map(str, shape)), "X-Edit-Count": str(3 + n),
                     "Content-Type": "application/octet-stream"})
        assert status == 201, raw
        changed = json.loads(raw)["changed_pixels"]
        assert 0 < changed <= 64, changed

        status, _, raw = http("POST", f"{base_url}/api/crowd/crops/{crop_id}/submit", headers=auth,
                              json_body={"active_seconds": 20.0 + 5 * n, "edit_count": 3 + n})
        assert status == 200, raw
        submitted[crop_id] = (labels, changed)
    return submitted


def login(page, base_url: str, username: str, next_path: str) -> None:
    page.goto(f"{base_url}/login?next={next_path}")
    page.fill('input[name="username"]', username)
    page.fill('input[name="password"]', PASSWORD)
    with page.expect_navigation():
        page.click('main button[type="submit"]')


# --- fixtures ----------------------------------------------------------------------------------------
@pytest.fixture
def accounts(crowd_runtime):
    from backend.services.users import create_user

    with crowd_runtime.db.session() as s:
        create_user(s, ADMIN, "admin", PASSWORD)
        create_user(s, REVIEWER, "reviewer", PASSWORD)


# --- the test ----------------------------------------------------------------------------------------
def test_console_round_crowd_review_loop(chromium, crowd_runtime, live_app, accounts, screenshot_dir, tmp_path):
    from backend.models import Crop, Image, LabelRevision, Project, Stitch
    from backend.services import labels_io

    base = live_app.url
    rt = crowd_runtime
    tiffs = write_tiffs(tmp_path)

    # --- the admin creates a project --------------------------------------------------------------------
    admin = new_page(chromium)
    login(admin, base, ADMIN, "/projects/new")
    assert admin.url.endswith("/projects/new"), admin.url
    admin.fill("#f-name", "e2e console flow")
    admin.fill("#f-crop", str(CROP))
    admin.fill("#f-overlap", str(OVERLAP))
    admin.fill("#f-k", "1")
    admin.fill("#f-gold", "0")
    with admin.expect_navigation():
        admin.click('form.card button[type="submit"]')
    with rt.db.session() as s:
        project = s.scalar(select(Project).where(Project.name == "e2e console flow"))
        assert project is not None
        project_id = project.id
        assert (project.crop_size, project.overlap, project.annotators_per_crop, project.gold_fraction) == \
            (CROP, OVERLAP, 1, 0.0)
    assert admin.url.endswith(f"/projects/{project_id}/images"), admin.url

    # --- uploads two TIFFs, one progress bar each ---------------------------------------------------------
    admin.set_input_files('[data-role="files"]', [str(p) for p in tiffs])
    admin.click('[data-role="upload-form"] button[type="submit"]')
    admin.wait_for_selector('[data-role="upload-list"] li:nth-child(2) .msg.ok', timeout=60000)
    bars = admin.eval_on_selector_all('[data-role="upload-list"] li', """rows => rows.map(r => ({
        value: r.querySelector('progress').value, done: r.querySelector('progress').classList.contains('done'),
        text: r.querySelector('.msg').textContent }))""")
    assert len(bars) == 2
    for bar, path in zip(bars, tiffs):
        assert bar["value"] == 1 and bar["done"], bar
        assert f"{path.name} ({SIZE}×{SIZE}, 2 ch)" in bar["text"], bar
    assert admin.locator('[data-role="image-grid"] .image-card').count() == 2
    with rt.db.session() as s:
        images = s.scalars(select(Image).where(Image.project_id == project_id).order_by(Image.id)).all()
        assert [(i.name, i.width, i.height, i.status) for i in images] == \
            [(p.name, SIZE, SIZE, "uploaded") for p in tiffs]
        image_ids = [i.id for i in images]

    # --- starts round 0; prediction and cropping run in the server's queue ----------------------------------
    admin.goto(f"{base}/projects/{project_id}/rounds")
    with admin.expect_navigation():
        admin.click('form[action$="/rounds"] button[type="submit"]')
    assert "Round 0 started" in admin.text_content(".flash")
    wait_for(lambda: jobs_done(rt, project_id, ("predict_image", "crop_image")), 90, "prediction and cropping")
    with rt.db.session() as s:
        crops = s.scalars(select(Crop).where(Crop.image_id.in_(image_ids))).all()
        n_crops = len(crops)
        assert n_crops == 8 and all(c.status == "open" and not c.is_gold for c in crops)  # 2 × 2 per image
    admin.reload()  # the jobs table as the admin sees it now
    summary = admin.eval_on_selector_all('[data-role="job-summary"] tr', "rs => rs.map(r => r.textContent)")
    assert any("predict_image" in t and "2 / 2" in t for t in summary), summary
    assert any("crop_image" in t and "2 / 2" in t for t in summary), summary

    # --- the crowd: one submission per crop over HTTP ------------------------------------------------------
    submitted = crowd_annotate(base, project_id, n_crops)
    assert len(submitted) == n_crops
    wait_for(lambda: jobs_done(rt, project_id, ("fuse_crop", "stitch_image")) and _n_stitches(rt, image_ids) == 2,
             90, "fusion and stitching of both images")
    crowd_pixels = float(np.mean([changed for _, changed in submitted.values()]))
    assert _figures(rt, project_id)[0] == pytest.approx(crowd_pixels)  # the dashboard's corrections
    with rt.db.session() as s:
        stitches = {st.image_id: st for st in s.scalars(select(Stitch).where(Stitch.image_id.in_(image_ids)))}
        stitch_ids = {image_id: stitches[image_id].id for image_id in image_ids}
        assert all(s.get(Crop, cid).status == "fused" for cid in submitted)

    # --- the reviewer: both images wait in the queue ---------------------------------------------------------
    page = new_page(chromium)
    ui = ReviewPage.login(page, base, REVIEWER)
    assert page.url.endswith("/review")
    queued = page.eval_on_selector_all('[data-role="review-queue"] tbody tr',
                                       "rs => rs.map(r => Number(r.dataset.stitchId))")
    assert sorted(queued) == sorted(stitch_ids.values())
    first_id, second_id = image_ids
    first_stitch, second_stitch = stitch_ids[first_id], stitch_ids[second_id]
    with page.expect_navigation():
        page.click(f'tr[data-stitch-id="{first_stitch}"] a.btn')
    ui.wait_ready()
    stitched = labels_io.get_labels(rt.store, stitches[first_id].key)
    assert np.array_equal(ui.layers(), stitched)

    # Edit one cell (a new cell brushed along a quiet row), save, approve.
    y = quiet_row(stitched, range(40, SIZE - 40), 60, 110)
    new_id = int(stitched[0].max()) + 1
    page.click('button[data-action="label:new"]')
    ui.stroke_row(y, 60, 110)
    expected = stitched.copy()
    expected[0] = painted_row(expected[0], y, 60, 110, BRUSH_RADIUS, new_id)
    assert np.array_equal(ui.layers(), expected)
    page.click('[data-role="save-button"]')
    ui.wait_save_state("saved")
    page.click('[data-role="approve"]')
    page.click('dialog button[value="yes"]')
    page.wait_for_selector('#review[data-decision="approved"]', state="attached")

    # The second image: overlays on, two crops sent back with a reason.
    page.goto(f"{base}/review/{second_stitch}")
    ui.wait_ready()
    for name in ("conflicts", "changed", "crops"):
        ui.toggle_overlay(name)
    assert all(page.is_checked(f'[data-role="overlay-{n}"]') for n in ("conflicts", "changed", "crops"))
    with rt.db.session() as s:
        second_crops = s.scalars(select(Crop).where(Crop.image_id == second_id).order_by(Crop.index)).all()
        picked = [(c.id, c.y0, c.x0, c.y1, c.x1) for c in (second_crops[0], second_crops[3])]
        others = [c.id for c in second_crops if c.id not in {p[0] for p in picked}]
    page.mouse.move(5, 5)
    page.screenshot(path=str(screenshot_dir / "console_review_overlays.png"))
    page.click('[data-role="reject"]')
    for _, y0, x0, y1, x1 in picked:
        ui.click_pixel((y0 + y1) // 2, (x0 + x1) // 2)
    page.fill('[data-role="reject-reason"]', REASON)
    with page.expect_request(lambda r: r.url.endswith("/reject")) as sent:
        page.click('[data-role="reject-confirm"]')
        page.click('dialog button[value="yes"]')
    assert sorted(sent.value.post_data_json["crop_ids"]) == sorted(p[0] for p in picked)
    page.wait_for_selector('#review[data-decision="rejected"]', state="attached")
    assert not page.errors, page.errors

    # --- what the database holds -------------------------------------------------------------------------------
    with rt.db.session() as s:
        image = s.get(Image, first_id)
        assert image.status == "approved" and s.get(Stitch, first_stitch).status == "approved"
        revision = s.scalar(select(LabelRevision).where(LabelRevision.stitch_id == first_stitch)
                            .order_by(LabelRevision.number.desc()))
        assert revision is not None and revision.number == 1
        saved = labels_io.get_labels(rt.store, revision.key)
        approved = labels_io.get_labels(rt.store, image.labels_key)
        for cid, *_ in picked:
            crop = s.get(Crop, cid)
            assert (crop.status, crop.generation, crop.reopen_reason) == ("open", 1, REASON)
        for cid in others:
            crop = s.get(Crop, cid)
            assert (crop.status, crop.generation, crop.reopen_reason) == ("fused", 0, None)
        assert s.get(Image, second_id).status == "in_crowd"
    assert saved.dtype == np.int32 and np.array_equal(saved, expected)
    assert np.array_equal(approved, saved)

    # --- the admin's views, for a person to look at ------------------------------------------------------------
    admin.goto(f"{base}/projects/{project_id}/dashboard")
    admin.wait_for_selector("figure.chart-card svg")
    assert "Figures per round" in admin.text_content("main")
    admin.screenshot(path=str(screenshot_dir / "console_dashboard.png"), full_page=True)
    admin.goto(f"{base}/projects/{project_id}/annotators")
    table = admin.eval_on_selector_all("main table.ll-table tbody tr",
                                       "rs => rs.map(r => Array.from(r.cells, c => c.textContent.trim()))")
    by_worker = {row[0]: row for row in table}
    assert set(WORKERS) <= set(by_worker), table
    done = {w: sum(1 for n in range(n_crops) if WORKERS[n % len(WORKERS)] == w) for w in WORKERS}
    assert all(by_worker[w][2] == str(done[w]) for w in WORKERS), table
    admin.screenshot(path=str(screenshot_dir / "console_annotators.png"), full_page=True)
    assert not admin.errors, admin.errors
    admin.context.close()
    page.context.close()

    # The reopened crops are leasable again and carry the reason to the next annotator.
    status, _, raw = http("POST", f"{base}/api/crowd/{project_id}/lease", json_body={"params": {"worker": "w9"}})
    assert status == 200, raw
    again = json.loads(raw)
    assert again["task"]["crop_id"] in {p[0] for p in picked} and again["task"]["reopen_reason"] == REASON


def _n_stitches(runtime, image_ids: list[int]) -> int:
    from backend.models import Stitch

    with runtime.db.session() as s:
        return len(set(s.scalars(select(Stitch.image_id).where(Stitch.image_id.in_(image_ids)))))



def test_reject_keeps_history_and_serves_the_review_labels(crowd_runtime, live_app, tmp_path):
    """Without a browser: after a reject, the next annotator of a reopened crop starts from the image's
    labels at review time, and the dashboard's corrections of earlier submissions do not change."""
    from backend.models import Crop, Image, Project, Stitch
    from backend.services import labels_io, review, rounds
    from backend.services.images import Upload, import_images
    from backend.services.projects import create_project

    rt, base = crowd_runtime, live_app.url
    with rt.db.session() as s:
        project = create_project(s, "e2e reject history", ["DAPI", "membrane"], crop_size=CROP, overlap=OVERLAP,
                                 annotators_per_crop=1, gold_fraction=0.0)
        project_id = project.id
        import_images(s, rt.store, project, [Upload(p.name, p.read_bytes()) for p in write_tiffs(tmp_path)[:1]])
    with rt.db.session() as s:
        rounds.start_round(s, rt.queue, s.get(Project, project_id))
    wait_for(lambda: jobs_done(rt, project_id, ("predict_image", "crop_image")), 90, "prediction and cropping")
    with rt.db.session() as s:
        n_crops = s.query(Crop).count()
    submitted = crowd_annotate(base, project_id, n_crops)  # every crop's labels are read (and cached) here
    wait_for(lambda: jobs_done(rt, project_id, ("fuse_crop", "stitch_image")) and
             _count(rt, Stitch) == 1, 90, "stitching")
    before = _figures(rt, project_id)
    with rt.db.session() as s:
        stitch = s.scalar(select(Stitch))
        crop = s.scalar(select(Crop).where(Crop.image_id == stitch.image_id).order_by(Crop.index))
        window = (crop.id, crop.y0, crop.x0, crop.y1, crop.x1)
        stitched = labels_io.get_labels(rt.store, stitch.key)
        review.reject(s, rt.store, stitch, None, REASON, [crop.id])
        assert s.get(Image, stitch.image_id).status == "in_crowd"
    assert submitted

    status, _, raw = http("POST", f"{base}/api/crowd/{project_id}/lease", json_body={"params": {"worker": "w9"}})
    assert status == 200, raw
    task = json.loads(raw)
    crop_id, y0, x0, y1, x1 = window
    assert task["task"]["crop_id"] == crop_id
    status, headers, raw = http("GET", f"{base}/api/crowd/crops/{crop_id}/labels",
                                headers={"Authorization": f"Bearer {task['token']}"})
    assert status == 200, raw
    shape = tuple(int(v) for v in headers["X-Shape"].split(","))
    served = np.frombuffer(zlib.decompress(raw), dtype="<i4").reshape(shape)
    assert np.array_equal(served, stitched[:, y0:y1, x0:x1]), "the reopened crop serves stale labels"
    assert _figures(rt, project_id) == pytest.approx(before), "a reject rewrote the dashboard's history"


def _count(runtime, model) -> int:
    with runtime.db.session() as s:
        return s.query(model).count()


def _figures(runtime, project_id: int) -> tuple:
    """Round 0's (changed pixels per crop, changed cells per crop) on the dashboard."""
    from backend.services import dashboard

    with runtime.db.session() as s:
        f = dashboard.project_figures(s, runtime.store, project_id)[0]
        return f.changed_pixels_per_crop, f.changed_cells_per_crop
