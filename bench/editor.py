"""Editor speed in Chromium: brush strokes, a server tool round trip, and the crop fetch.

    python bench/editor.py [--reps 60] [--database-url URL]

Serves the app (SQLite in a temporary folder unless ``--database-url`` names another database),
seeds one 270×270 synthetic crop, opens the crowd annotate page in Debian's Chromium (headless,
software rendering) at 1280×720 and measures, in the page:

* ``brush_ms_270`` — median time to apply one 20-point brush stroke (radius 8 px, points 6 px
  apart) and redraw, on the crop: pointer events are dispatched to the editor's canvas, then the
  pending repaint runs and one screen pixel is read back (so the canvas work has finished);
* ``brush_ms_2048`` — the same on a 2048×2048, 3-channel image (a second editor instance built in
  the page with synthetic data, as the review page will use it; points 24 px apart, zoomed out);
* ``server_tool_ms`` — median watershed split round trip on the crop: encode the box, POST, decode,
  apply as one undo entry, redraw (``server_tool_server_ms``: the part spent in the Flask handler);
* ``crop_fetch_ms`` / ``crop_fetch_bytes`` — fetching and decoding the crop's channels + labels
  (median over page reloads; bytes as sent, deflate-compressed);
* the scripted correction task (``bench/correction_task.py``): a second synthetic crop starts from
  its truth with 5 merges, 5 splits, 5 missed cells, 5 spurious objects and 5 boundary errors
  injected, and a careful annotator fixes every one in the crowd task page (in a host page's
  iframe) by pointer and keys only — ``correction_actions`` (pointer strokes + clicks + keys),
  ``correction_s`` (the time the page took to run them), ``correction_f1`` (whole-cell object
  F1 at IoU 0.5 of the autosaved revision against the truth), ``errors_fixed``,
  ``actions_per_error`` and the actions spent on each kind of error.

Prints a table, then as the last line one JSON object. Acceptance: brush_ms_270 <= 4,
brush_ms_2048 <= 16, server_tool_ms <= 100, correction_f1 >= 0.98 with actions_per_error <= 3.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.correction_task import KINDS, run_correction_task  # noqa: E402
from tests.e2e.crowd_site import LiveServer, launch_chromium, seed_crowd_task  # noqa: E402

RADIUS = 8
POINTS = 20

# Build a stroke on `ed` from image points and time it (dispatch + repaint + pixel read-back).
STROKE_JS = """async ({ editorPath, points, reps, radius }) => {
  const ed = editorPath === "main" ? window.looplabel.editor : window.benchEditor;
  ed.setTool("brush");
  ed.setBrushRadius(radius);
  ed.select(null);
  const target = ed.view.overlay;
  const client = points.map(([y, x]) => ed.view.imageToClient(y + 0.5, x + 0.5));  // untimed
  const fire = (type, p, buttons) => {
    target.dispatchEvent(new PointerEvent(type, { clientX: p.x, clientY: p.y, button: 0, buttons,
      pointerId: 1, pointerType: "mouse", isPrimary: true, bubbles: true }));
  };
  const screen = ed.view.screen.getContext("2d");
  const once = () => {
    ed.view.renderNow();
    const t0 = performance.now();
    fire("pointerdown", client[0], 1);
    for (let i = 1; i < client.length; i++) fire("pointermove", client[i], 1);
    fire("pointerup", client[client.length - 1], 0);
    ed.view.renderNow();
    screen.getImageData(0, 0, 1, 1);
    const ms = performance.now() - t0;
    const entry = ed.history.undo(ed.layers);  // restore, untimed
    ed.select(null);
    ed.redrawEntry(entry);
    ed.view.renderNow();
    return ms;
  };
  for (let i = 0; i < 5; i++) once();      // warm-up (JIT)
  const times = [];
  for (let i = 0; i < reps; i++) times.push(once());
  return times;
}"""

BIG_EDITOR_JS = """async ({ size }) => {
  const { Editor } = await import("/static/editor/app/editor.js");
  const host = document.createElement("div");
  const stage = document.querySelector('[data-role="stage"]').getBoundingClientRect();
  Object.assign(host.style, { position: "fixed", left: `${stage.left}px`, top: `${stage.top}px`,
    width: `${stage.width}px`, height: `${stage.height}px`, zIndex: 50, background: "#000" });
  document.body.appendChild(host);
  const C = 3, w = size, h = size;
  const channels = new Uint8Array(C * w * h);
  let seed = 12345;
  for (let i = 0; i < channels.length; i++) { seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; channels[i] = seed >>> 24; }
  const layer = (offset) => {
    const data = new Int32Array(w * h);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
      if ((y + offset) % 16 < 14 && (x + offset) % 16 < 14) data[y * w + x] = 1 + ((y >> 4) * Math.ceil(w / 16) + (x >> 4));
    }
    return { width: w, height: h, data };
  };
  const channelInfo = [{ name: "DAPI", color: "#0050ff" }, { name: "membrane", color: "#00ff40" }, { name: "CD45", color: "#ff2020" }];
  window.benchEditor = new Editor({ stage: host, width: w, height: h, channels, channelInfo, layers: [layer(0), layer(4)] });
  window.benchEditor.view.resize();
  window.benchEditor.view.renderNow();
  return window.benchEditor.view.scale;
}"""

SPLIT_JS = """async ({ bbox, label, seeds, reps }) => {
  const ed = window.looplabel.editor;
  const times = [];
  const serverMs = [];
  const original = ed.serverTool;
  ed.serverTool = async (name, body) => { const a = await original(name, body); serverMs.push(a.ms); return a; };
  for (let i = 0; i < reps + 3; i++) {
    const t0 = performance.now();
    const changed = await ed.runServerTool("watershed_split", { bbox, label, seeds, nextId: ed.nextLabelId() });
    ed.view.renderNow();
    const ms = performance.now() - t0;
    if (!changed) throw new Error("the split changed nothing");
    ed.undo();
    ed.view.renderNow();
    if (i >= 3) times.push(ms);
  }
  ed.serverTool = original;
  return { times, serverMs: serverMs.slice(3) };
}"""


def stroke_points(centre: float, spacing: float) -> list[list[float]]:
    """20 points along a gentle sine, ``spacing`` px apart horizontally, centred on the image."""
    x0 = centre - spacing * (POINTS - 1) / 2
    return [[centre + 2 * spacing * math.sin(i / (POINTS - 1) * 2 * math.pi), x0 + spacing * i] for i in range(POINTS)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=60, help="timed repetitions per brush figure")
    parser.add_argument("--tool-reps", type=int, default=30, help="timed server tool round trips")
    parser.add_argument("--reloads", type=int, default=8, help="page loads for the crop fetch figure")
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temporary folder")
    parser.add_argument("--correction-seed", type=int, default=0, help="chooses the correction task's errors")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    from backend.app import build_app
    from backend.config import Settings
    from backend.db import Database
    from backend.runtime import Runtime

    tmp = Path(tempfile.mkdtemp(prefix="looplabel-bench-"))
    db_url = args.database_url or f"sqlite:///{tmp / 'bench.db'}"
    database = Database(db_url)
    database.upgrade()
    database.dispose()
    settings = Settings.from_env({"LOOPLABEL_INSTANCE": str(tmp / "instance"), "DATABASE_URL": db_url,
                                  "STORAGE_URL": f"file://{tmp / 'storage'}", "SECRET_KEY": "bench"})
    runtime = Runtime(settings)
    task = seed_crowd_task(runtime, name=f"bench-editor-{tmp.name[-6:]}")
    (s1y, s1x), (s2y, s2x) = task.split_seeds
    ys, xs = np.nonzero(task.predicted[0] == task.merged_id)
    split_bbox = [max(0, int(ys.min()) - 3), max(0, int(xs.min()) - 3), min(270, int(ys.max()) + 4), min(270, int(xs.max()) + 4)]

    with LiveServer(build_app(runtime=runtime)) as live, sync_playwright() as pw:
        browser = launch_chromium(pw)
        page = browser.new_page(viewport={"width": 1280, "height": 720})
        url = f"{live.url}/annotate/{task.project_id}?worker=bench"
        fetch_ms, fetch_bytes = [], []
        for i in range(args.reloads):
            page.goto(url)
            page.wait_for_selector('#annotate[data-ready="true"]', state="attached", timeout=30000)
            timings = page.evaluate("() => window.looplabel.timings")
            if i > 0:  # the first load also compiles every module
                fetch_ms.append(timings["fetch_ms"])
                fetch_bytes.append(timings["fetch_bytes"])
        scale_270 = page.evaluate("() => window.looplabel.editor.view.scale")
        brush_270 = page.evaluate(STROKE_JS, {"editorPath": "main", "points": stroke_points(135, 6), "reps": args.reps,
                                              "radius": RADIUS})
        split = page.evaluate(SPLIT_JS, {"bbox": split_bbox, "label": task.merged_id,
                                         "seeds": [[s1y, s1x], [s2y, s2x]], "reps": args.tool_reps})
        scale_2048 = page.evaluate(BIG_EDITOR_JS, {"size": 2048})
        brush_2048 = page.evaluate(STROKE_JS, {"editorPath": "bench", "points": stroke_points(1024, 24),
                                               "reps": max(10, args.reps // 2), "radius": RADIUS})
        page.close()
        correction = run_correction_task(browser, runtime, live.url, seed=args.correction_seed)
        version = browser.version
        browser.close()
    runtime.close()

    med = statistics.median
    rows = [
        ("brush stroke + redraw, 270² crop", f"{scale_270:.2f} px/px", med(brush_270), max(brush_270), len(brush_270), "≤ 4"),
        ("brush stroke + redraw, 2048² image", f"{scale_2048:.2f} px/px", med(brush_2048), max(brush_2048), len(brush_2048), "≤ 16"),
        ("watershed split round trip, 270²", "", med(split["times"]), max(split["times"]), len(split["times"]), "≤ 100"),
        ("  of which in the Flask handler", "", med(split["serverMs"]), max(split["serverMs"]), len(split["serverMs"]), ""),
        ("crop fetch (channels + labels)", f"{int(med(fetch_bytes))} B", med(fetch_ms), max(fetch_ms), len(fetch_ms), ""),
    ]
    print(f"Chromium {version} (headless, --disable-gpu), viewport 1280×720; brush: {POINTS} points, radius {RADIUS} px;"
          f" database {'SQLite' if db_url.startswith('sqlite') else db_url.split(':')[0]}")
    print(f"{'figure':38} {'zoom / size':>12} {'median ms':>10} {'max ms':>9} {'n':>4}  goal")
    for name, extra, m, mx, n, goal in rows:
        print(f"{name:38} {extra:>12} {m:10.2f} {mx:9.2f} {n:4d}  {goal}")
    print(f"\ncorrection task (seed {args.correction_seed}): {correction['errors_fixed']} of "
          f"{correction['errors_injected']} errors fixed with {correction['correction_actions']} actions "
          f"({correction['actions_per_error']} per error, goal <= 3) in {correction['correction_s']} s; "
          f"whole-cell F1 {correction['correction_f1_start']} -> {correction['correction_f1']} (goal >= 0.98)")
    print(f"{'error kind':12} {'fixed':>6} {'actions':>8}")
    for kind in KINDS:
        print(f"{kind:12} {correction['errors_fixed_by_kind'][kind]:6d} {correction['actions_by_kind'][kind]:8d}")
    print(f"{'(zoom out)':12} {'':6} {correction['actions_by_kind']['view']:8d}")
    print(json.dumps({
        "brush_ms_270": round(med(brush_270), 3),
        "brush_ms_2048": round(med(brush_2048), 3),
        "server_tool_ms": round(med(split["times"]), 2),
        "server_tool_server_ms": round(med(split["serverMs"]), 2),
        "crop_fetch_ms": round(med(fetch_ms), 2),
        "crop_fetch_bytes": int(med(fetch_bytes)),
        "brush_radius_px": RADIUS,
        **correction,
        "chromium": version,
    }))


if __name__ == "__main__":
    main()
