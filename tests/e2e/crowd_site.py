"""A real crowd site for browser tests and the editor benchmark.

* :func:`seed_crowd_task` — a project with one 270×270 synthetic crop whose predicted labels are
  the ground truth with two touching cells merged (something to split); :func:`seed_crowd_crop`
  the same with any labels made from the truth;
* :class:`LiveServer` — the Flask app on a free localhost port (werkzeug, in a thread);
* :class:`HostPageServer` — a *second* localhost origin serving a host page that embeds the task in
  an iframe and records the completion ``postMessage``, as a crowdsourcing platform would;
* :func:`launch_chromium` — Debian's Chromium through Playwright (never a downloaded browser).
"""

from __future__ import annotations

import html
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import numpy as np
from scipy import ndimage as ndi

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]
CROP = 270


def launch_chromium(playwright):
    """Chromium from ``/usr/bin/chromium``; raises if it is missing (the caller decides skip/fail)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)


@dataclass
class SeededTask:
    """What a test needs to know about the seeded crop.

    ``predicted`` is the (2, 270, 270) int32 stack the task starts from; ``merged_id`` is the
    whole-cell id of two touching ground-truth cells merged into one, and ``split_seeds`` one
    interior pixel (y, x) of each of the two original cells.
    """

    project_id: int
    crop_id: int
    predicted: np.ndarray
    channels: np.ndarray
    merged_id: int
    split_seeds: tuple[tuple[int, int], tuple[int, int]]


def interior_pixel(mask: np.ndarray) -> tuple[int, int]:
    """The pixel of ``mask`` farthest from its border (y, x)."""
    dist = ndi.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return int(y), int(x)


def merge_touching_pair(whole: np.ndarray, region: tuple[slice, slice]) -> tuple[np.ndarray, int, tuple]:
    """Merge two 4-adjacent, well-sized cells lying inside ``region``; returns (labels, id, seeds)."""
    areas = np.bincount(whole.ravel())
    inside = np.zeros_like(whole, dtype=bool)
    inside[region] = True
    best = None
    for a in np.unique(whole[region]):
        if a == 0 or areas[a] < 150 or not inside[whole == a].all():
            continue
        ring = ndi.binary_dilation(whole == a) & ~(whole == a)
        for b in np.unique(whole[ring]):
            if b == 0 or b == a or areas[b] < 150 or not inside[whole == b].all():
                continue
            contact = np.count_nonzero(ring & (whole == b))
            score = contact if 6 <= contact <= 20 else 0
            if score and (best is None or min(areas[a], areas[b]) > best[0]):
                best = (min(areas[a], areas[b]), int(a), int(b))
    if best is None:
        raise RuntimeError("the synthetic crop has no pair of touching cells to merge; change the seed")
    _, a, b = best
    seeds = (interior_pixel(whole == a), interior_pixel(whole == b))
    merged = whole.copy()
    merged[whole == b] = a
    return merged, a, seeds


@dataclass
class SeededCrop:
    """A project with one 270×270 crop open for the crowd: ids, the truth and the labels it starts from.

    ``truth`` and ``predicted`` are (2, 270, 270) int32 stacks (whole-cell, nuclear); ``channels``
    the (3, 270, 270) uint8 display values the page shows.
    """

    project_id: int
    crop_id: int
    truth: np.ndarray
    predicted: np.ndarray
    channels: np.ndarray


def seed_crowd_crop(runtime, *, name: str, predict, platform: str = "generic", platform_settings: dict | None = None,
                    frame_ancestors: list[str] | None = None, seed: int = 7) -> SeededCrop:
    """Create a project with one 270×270 synthetic crop open for the crowd (round 0).

    ``predict(truth)`` turns the ground-truth (2, 270, 270) stack into the labels the crop starts
    from (the round's prediction).
    """
    from backend.core.imaging import channels_to_uint8
    from backend.models import Round
    from backend.services import labels_io
    from backend.services.demo import synthetic_npz
    from backend.services.images import Upload, import_images
    from backend.services.projects import create_project
    from backend.services.stitching import crop_image

    store = runtime.store
    with runtime.db.session() as s:
        project = create_project(
            s, name, ["DAPI", "membrane", "lineage_1"], crop_size=CROP, annotators_per_crop=2, gold_fraction=0.0,
            platform=platform, platform_settings=platform_settings or {}, frame_ancestors=frame_ancestors or [],
            instructions="Correct the outline of every cell. **Whole cell**: the membrane (green) bounds the "
                         "cell. **Nuclear**: the DAPI (blue) blob inside it. Split merged cells, merge split "
                         "ones, delete debris, and draw cells the model missed.",
        )
        image = import_images(s, store, project, [Upload("tissue.npz", synthetic_npz(CROP, CROP, 3, seed))])[0]
        truth = labels_io.get_labels(store, image.ground_truth_key)
        predicted = np.asarray(predict(truth), dtype=np.int32)
        rnd = Round(project_id=project.id, number=0)
        s.add(rnd)
        s.flush()
        labels_io.put_labels(store, labels_io.prediction_key(image.id, 0), predicted)
        crops = crop_image(s, store, image.id, rnd.id)
        assert len(crops) == 1, "a 270×270 image is one crop"
        raw = store.get_array(image.raw_key)
        channels = channels_to_uint8(raw, np.asarray(image.display_range, dtype=np.float64))
        return SeededCrop(project.id, crops[0].id, truth, predicted, channels)


def seed_crowd_task(runtime, *, name: str, platform: str = "generic", platform_settings: dict | None = None,
                    frame_ancestors: list[str] | None = None, seed: int = 7) -> SeededTask:
    """Create a project with one 270×270 crop open for the crowd (round 0, predicted labels)."""
    merged: dict = {}

    def merge_two(truth: np.ndarray) -> np.ndarray:
        whole, merged["id"], merged["seeds"] = merge_touching_pair(truth[0], (slice(150, 260), slice(10, 260)))
        return np.stack([whole, truth[1]])

    crop = seed_crowd_crop(runtime, name=name, predict=merge_two, platform=platform,
                           platform_settings=platform_settings, frame_ancestors=frame_ancestors, seed=seed)
    return SeededTask(crop.project_id, crop.crop_id, crop.predicted, crop.channels, merged["id"], merged["seeds"])


class LiveServer:
    """The Flask app served over HTTP on 127.0.0.1:<free port>, in a background thread."""

    def __init__(self, app):
        import logging

        from werkzeug.serving import make_server

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log per request
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.port = self.server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="live-app", daemon=True)

    def __enter__(self) -> "LiveServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.thread.join(timeout=10)


HOST_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Study host</title>
<style>body {{ margin: 0; font: 14px system-ui; }} iframe {{ display: block; border: 0; }} .tall {{ height: 1600px; }}</style>
</head><body>
<iframe id="task" src="{src}" width="1280" height="720" title="annotation task"></iframe>
<div class="tall"><h1>Study host page</h1><pre id="log"></pre></div>
<script>
window.received = [];
window.addEventListener("message", (event) => {{
  if (!event.data || event.data.type !== "looplabel:complete") return;
  const record = {{ origin: event.origin, data: event.data }};
  window.received.push(record);
  document.getElementById("log").textContent += JSON.stringify(record) + "\\n";
  if (window.recordCompletion) window.recordCompletion(record);
}});
</script>
</body></html>
"""


class HostPageServer:
    """A second origin: ``/host?src=<task url>`` embeds the task in a 1280×720 iframe."""

    def __init__(self):
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's naming)
                parts = urlsplit(self.path)
                if parts.path != "/host":
                    self.send_error(404)
                    return
                src = parse_qs(parts.query).get("src", [""])[0]
                body = HOST_PAGE.format(src=html.escape(src, quote=True)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):  # keep test output quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_port
        self.origin = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="host-page", daemon=True)

    def page_url(self, task_url: str) -> str:
        from urllib.parse import quote

        return f"{self.origin}/host?src={quote(task_url, safe='')}"

    def __enter__(self) -> "HostPageServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)
