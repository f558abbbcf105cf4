"""The scripted correction task of ``bench/editor.py``: known errors fixed through the editor's UI.

A 270×270 crop of the project's synthetic tissue (:mod:`backend.core.synthetic`) starts from its
true whole-cell labels with five merges, splits, missed cells, spurious objects and boundary
errors injected (:mod:`bench.injected_errors`).

A careful annotator who sees the image and the labels (here: the script knows where the truth
differs, and plans pointer paths from the cells it sees) fixes them with the editor's own tools,
by pointer and keys only: a merge is one Cut stroke along the membrane between the two cells; a
split is select, Merge (R), click the other piece; a spurious object is select, Delete; a bulge
is one stroke of the safe eraser starting on it (it erases only that cell; Esc first lets go of
the cell selected before); a bite is select, Brush, colour the missing cap in; a missed cell is
New cell (N), then colour it in. Brush and eraser strokes colour a region back and forth like a
person does; they may cross other cells (the safe brush and eraser leave those alone) but never
the background beside a cell being coloured in, nor the true pixels of a cell being trimmed.
Tool keys are pressed only when the tool changes; every key, click and stroke counts as an
action, and so does each zoom-out when part of the crop lies under the navigator.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from bench.injected_errors import InjectedError, fixed, inject_errors
from tests.e2e.careful_annotator import boundary_stroke, cover_strokes
from tests.e2e.crowd_site import interior_pixel

KINDS = ("merge", "split", "spurious", "boundary", "missed")  # the order the annotator works in
TOOL_KEYS = {"cut": "/", "select": "v", "brush": "b", "eraser": "e"}


@dataclass
class CorrectionPlan:
    """The annotator's session as UI steps, built fix by fix while tracking the editor's state.

    Steps: ``(fix, "button", action)`` a tool bar click, ``(fix, "key", combo)``,
    ``(fix, "click", (y, x))``, ``(fix, "stroke", [(y, x), ...])`` a pointer drag, where ``fix``
    is the kind of error the step serves. The first tool is picked on the tool bar (that click
    also gives the task frame the keyboard); later ones by key, only when the tool changes.
    ``radii`` are the brush's and the eraser's sizes as the page has them, ``size_steps`` the
    radii its ``[`` and ``]`` keys step through.
    """

    radii: dict
    size_steps: list
    steps: list = field(default_factory=list)
    tool: str | None = None
    fixing: str = ""
    view_keys: int = 0

    def add(self, what: str, arg) -> None:
        self.steps.append((self.fixing, what, arg))

    def use(self, tool: str) -> None:
        if self.tool == tool:
            return
        if self.tool is None:
            self.add("button", f"tool:{tool}")
        else:
            self.add("key", TOOL_KEYS[tool])
        self.tool = tool

    def key(self, combo: str) -> None:
        self.add("key", combo)

    def click(self, mask: np.ndarray) -> None:
        self.add("click", interior_pixel(mask))

    def size(self, radius: int) -> None:
        """Step the current tool's size to ``radius`` with ``[`` / ``]``."""
        if radius not in self.size_steps:
            raise ValueError(f"radius {radius} is not one of the editor's sizes {self.size_steps}")
        while self.radii[self.tool] != radius:
            now = self.radii[self.tool]
            if now < radius:
                self.key("]")
                self.radii[self.tool] = min(r for r in self.size_steps if r > now)
            else:
                self.key("[")
                self.radii[self.tool] = max(r for r in self.size_steps if r < now)

    def colour(self, cover: np.ndarray, allowed: np.ndarray, start_on: np.ndarray | None = None) -> None:
        """Strokes of the current tool (brush or eraser, at its size) over ``cover``, never
        touching a pixel outside ``allowed``; the first starts on ``start_on`` when given."""
        for stroke in cover_strokes(cover, allowed, self.radii[self.tool], start_on=start_on):
            self.add("stroke", stroke)


def plan_corrections(truth: np.ndarray, start: np.ndarray, errors: list[InjectedError], *, radii: dict,
                     size_steps: list, brush_radius: int = 3, eraser_radius: int = 1) -> CorrectionPlan:
    """The UI steps that fix every error, grouped by tool as an annotator would work.

    The brush and the eraser are the editor's safe ones: the brush paints background only and
    the eraser erases only the selected cell (or the cell its stroke starts on), so their discs
    may cross other cells; what they must not cross is the background beside a cell being
    coloured in, and the true pixels of a cell being trimmed.

    Parameters
    ----------
    truth, start : (H, W) int32
        True and starting whole-cell labels.
    errors : list of InjectedError
        From :func:`inject_errors`.
    radii : dict
        ``{"brush": r, "eraser": r}``, the sizes when the task opens (the tool bar shows them).
    size_steps : list of int
        The radii ``[`` and ``]`` step through.
    brush_radius, eraser_radius : int
        The sizes the annotator works with, pixels.
    """
    plan = CorrectionPlan(radii=dict(radii), size_steps=list(size_steps))
    by_kind = {kind: [e for e in errors if e.kind == kind] for kind in KINDS}
    plan.fixing = "merge"
    for e in by_kind["merge"]:
        plan.use("cut")
        a, b = (truth == e.cells[0]), (truth == e.cells[1])
        larger, smaller = (a, b) if a.sum() >= b.sum() else (b, a)
        plan.add("stroke", boundary_stroke(larger, smaller))
    plan.fixing = "split"
    for e in by_kind["split"]:
        plan.use("select")
        ids, counts = np.unique(start[e.region], return_counts=True)
        pieces = [start == i for i in ids[np.argsort(-counts)]]
        plan.click(pieces[0])
        plan.key("r")
        plan.click(pieces[1])
    plan.fixing = "spurious"
    for e in by_kind["spurious"]:
        plan.use("select")
        plan.click(e.region)
        plan.key("Delete")  # nothing is selected after it
    plan.fixing = "boundary"
    bulges = [e for e in by_kind["boundary"] if e.detail == "bulge"]
    for i, e in enumerate(bulges):  # the safe eraser takes the cell its stroke starts on
        if i:
            plan.key("Escape")  # the previous bulge's cell is selected: let go of it
        plan.use("eraser")
        plan.size(eraser_radius)
        plan.colour(e.region, truth != e.cells[0], start_on=e.region)
    others = (truth != 0) & (start != 0)  # cells the safe brush may cross: it leaves them alone
    for e in by_kind["boundary"]:
        cell = truth == e.cells[0]
        if e.detail == "bite":
            plan.use("select")
            plan.click(start == e.cells[0])
            plan.use("brush")
            plan.size(brush_radius)
            plan.colour(e.region, cell | others)
    plan.fixing = "missed"
    for e in by_kind["missed"]:
        plan.key("n")  # a new id, and the safe brush
        plan.tool = "brush"
        plan.size(brush_radius)
        plan.colour(truth == e.cells[0], (truth == e.cells[0]) | others)
    return plan


# Whether the pointer at these image pixels would reach the canvas (not the navigator or a panel over it).
VISIBLE_JS = """(points) => {
  const ed = window.looplabel.editor;
  return points.every(([y, x]) => {
    const p = ed.view.imageToClient(y + 0.5, x + 0.5);
    return document.elementFromPoint(p.x, p.y) === ed.view.overlay;
  });
}"""


def _reach(ui, points: list) -> int:
    """Zoom out (the − key) until the pointer reaches every point on the canvas; returns the keys pressed."""
    for presses in range(4):
        if ui.frame.evaluate(VISIBLE_JS, [list(p) for p in points]):
            return presses
        ui.key("-")
    raise RuntimeError("part of the crop stays hidden under the editor's panels")


def perform(ui, plan: CorrectionPlan) -> tuple[int, float]:
    """Run the plan's steps in the task page; returns (actions, seconds).

    Before a click or a stroke, the annotator makes sure its pixels are on screen and not under
    the navigator (zooming out with − if needed: those key presses count too, as ``plan.view_keys``).
    """
    t0 = time.perf_counter()
    for _, kind, arg in plan.steps:
        if kind == "button":
            ui.frame.click(f'button[data-action="{arg}"]')
        elif kind == "key":
            ui.key(arg)
        elif kind == "click":
            plan.view_keys += _reach(ui, [arg])
            ui.click_pixel(*arg)
        else:
            halfway = [((a[0] + b[0]) // 2, (a[1] + b[1]) // 2) for a, b in zip(arg, arg[1:])]
            plan.view_keys += _reach(ui, arg + halfway)
            ui.drag_path(arg, steps=1)
    ui.frame.evaluate("() => window.looplabel.editor.view.renderNow()")
    return len(plan.steps) + plan.view_keys, time.perf_counter() - t0


# The brush's and the eraser's sizes as the tool bar shows them, and the sizes [ and ] step through.
SIZES_JS = """async () => {
  const { RADIUS_STEPS } = await import("/static/editor/paint_mode.js");
  return [{ ...window.looplabel.editor.radii }, [...RADIUS_STEPS]];
}"""


def run_correction_task(browser, runtime, app_url: str, *, seed: int = 0, brush_radius: int = 3,
                        eraser_radius: int = 1) -> dict:
    """Seed the crop, fix it in the crowd task page (inside a host page's iframe), score the saved labels.

    Parameters
    ----------
    browser
        A Playwright Chromium.
    runtime
        The runtime the app at ``app_url`` serves (the crop is seeded in its database and store).
    app_url : str
        The live app, ``http://127.0.0.1:<port>``.
    seed : int
        Chooses the injected errors.
    brush_radius, eraser_radius : int
        The sizes the annotator works with, pixels (radii).

    Returns
    -------
    dict
        ``correction_actions``, ``correction_s``, ``correction_f1`` (whole-cell object F1 at IoU
        0.5 of the saved revision against the truth), ``correction_f1_start``, ``errors_fixed``
        (IoU >= 0.8 with every true cell concerned, or the spurious object gone),
        ``errors_fixed_by_kind``, ``actions_per_error``, ``actions_by_kind``.
    """
    from sqlalchemy import select

    from backend.core.metrics import object_metrics
    from backend.models import Assignment, LabelRevision
    from backend.services import labels_io
    from tests.e2e.crowd_site import HostPageServer, seed_crowd_crop
    from tests.e2e.task_page import TaskPage

    injected: dict = {}

    def with_errors(truth: np.ndarray) -> np.ndarray:
        injected["start"], injected["errors"] = inject_errors(truth[0], seed=seed)
        return np.stack([injected["start"], truth[1]])

    with HostPageServer() as host:
        crop = seed_crowd_crop(runtime, name=f"bench-correction-{time.time_ns() % 10**9}", predict=with_errors,
                               frame_ancestors=[host.origin])
        truth, start, errors = crop.truth[0], injected["start"], injected["errors"]
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()
        page.goto(host.page_url(f"{app_url}/annotate/{crop.project_id}?worker=bench-careful"))
        ui = TaskPage(page).wait_ready(timeout_s=60)
        radii, size_steps = ui.frame.evaluate(SIZES_JS)
        plan = plan_corrections(truth, start, errors, radii=radii, size_steps=size_steps,
                                brush_radius=brush_radius, eraser_radius=eraser_radius)
        actions, seconds = perform(ui, plan)
        in_page = ui.layers()
        ui.wait_save_state("saved", timeout_s=60)
        context.close()
    with runtime.db.session() as s:
        revision = s.scalars(select(LabelRevision).join(Assignment, LabelRevision.assignment_id == Assignment.id)
                             .where(Assignment.crop_id == crop.crop_id)
                             .order_by(LabelRevision.number.desc())).first()
        saved = labels_io.get_labels(runtime.store, revision.key)
    if not np.array_equal(saved, in_page):
        raise RuntimeError("the saved revision differs from the labels the page shows")
    done = [bool(fixed(e, truth, saved[0])) for e in errors]
    return {
        "correction_actions": actions,
        "correction_s": round(seconds, 2),
        "correction_f1": round(object_metrics(truth, saved[0]).f1, 4),
        "correction_f1_start": round(object_metrics(truth, start).f1, 4),
        "errors_fixed": int(sum(done)),
        "errors_injected": len(errors),
        "errors_fixed_by_kind": {k: int(sum(d for d, e in zip(done, errors) if e.kind == k)) for k in KINDS},
        "actions_per_error": round(actions / len(errors), 2),
        "actions_by_kind": {**{k: sum(1 for step in plan.steps if step[0] == k) for k in KINDS},
                            "view": plan.view_keys},
        "correction_radii_px": {"brush": brush_radius, "eraser": eraser_radius},
    }
