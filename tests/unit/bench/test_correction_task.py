"""The scripted correction task's pure parts: the injected errors and the annotator's pointer paths."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from backend.core.synthetic import synthetic_tissue
from bench.correction_task import KINDS, plan_corrections
from bench.injected_errors import N_EACH, fixed, inject_errors
from tests.e2e.careful_annotator import boundary_stroke, brush_disc, cover_strokes, stamp


@pytest.fixture(scope="module")
def task():
    truth = synthetic_tissue(270, 270, n_channels=3, seed=7).whole_cell
    start, errors = inject_errors(truth, seed=0)
    return truth, start, errors


def test_five_errors_of_each_kind_apart_and_nothing_else_changed(task):
    truth, start, errors = task
    assert [e.kind for e in errors] == [k for k in ("merge", "split", "missed", "spurious", "boundary")
                                        for _ in range(N_EACH)]
    assert sorted(e.detail for e in errors if e.kind == "boundary") == ["bite"] * 3 + ["bulge"] * 2
    touched = np.zeros(truth.shape, bool)
    for e in errors:
        zone = ndi.binary_dilation(e.region | np.isin(truth, e.cells), iterations=2)
        assert not (touched & zone).any(), "errors overlap"
        touched |= zone
    assert np.array_equal(start[~touched], truth[~touched])


def test_each_error_does_what_its_kind_says(task):
    truth, start, errors = task
    for e in errors:
        cells = [truth == c for c in e.cells]
        if e.kind == "merge":
            assert len(set(start[cells[0] | cells[1]].tolist())) == 1
        elif e.kind == "split":
            assert len(np.unique(start[cells[0]])) == 2 and 0 not in start[cells[0]]
        elif e.kind == "missed":
            assert not start[cells[0]].any()
        elif e.kind == "spurious":
            assert not truth[e.region].any() and len(np.unique(start[e.region])) == 1 and start[e.region].all()
        else:
            ours = start == e.cells[0]
            iou = (ours & cells[0]).sum() / (ours | cells[0]).sum()
            assert 0.55 <= iou <= 0.85, (e.detail, iou)


def test_the_truth_fixes_every_error_and_the_start_none(task):
    truth, start, errors = task
    assert all(fixed(e, truth, truth) for e in errors)
    assert not any(fixed(e, truth, start) for e in errors)


def test_cover_strokes_never_leave_the_allowed_pixels_and_cover_the_rest():
    yy, xx = np.mgrid[:60, :60]
    cell = (yy - 30) ** 2 / 15 ** 2 + (xx - 28) ** 2 / 9 ** 2 <= 1
    neighbour = (yy - 30) ** 2 + (xx - 45) ** 2 <= 64
    for radius in (0, 1, 3, 5):
        strokes = cover_strokes(cell, cell | neighbour, radius)
        painted = stamp(cell.shape, strokes, radius)
        assert not (painted & ~(cell | neighbour)).any()
        assert (painted & cell).sum() >= 0.85 * cell.sum(), radius
        assert len(strokes) == 1, "a convex cell is coloured in one stroke"
    assert brush_disc(2).sum() == 13
    ring = cell & ~ndi.binary_erosion(cell, iterations=2)
    first = cover_strokes(ring, ~neighbour, 1, start_on=ring)[0][0]
    assert ring[first], "the first stroke starts on the pixels asked for"


def test_the_cut_stroke_runs_from_outside_both_cells_to_outside_along_their_boundary(task):
    truth, _, errors = task
    for e in (e for e in errors if e.kind == "merge"):
        a, b = (truth == c for c in e.cells)
        path = boundary_stroke(a, b)
        both = a | b
        assert not both[path[0]] and not both[path[-1]]
        near = ndi.binary_dilation(a & ndi.binary_dilation(b), iterations=1)
        assert all(near[p] for p in path[1:-1])


def test_the_plan_picks_tools_once_per_run_of_fixes_and_sizes_by_the_steps(task):
    truth, start, errors = task
    plan = plan_corrections(truth, start, errors, radii={"brush": 3, "eraser": 0},
                            size_steps=[0, 1, 2, 3, 5, 8], brush_radius=3, eraser_radius=1)
    kinds = [s[0] for s in plan.steps]
    assert kinds == sorted(kinds, key=KINDS.index), "fixes are grouped by kind"
    assert plan.steps[0] == ("merge", "button", "tool:cut")
    assert [s[1] for s in plan.steps if s[0] == "merge"] == ["button"] + ["stroke"] * N_EACH
    split_steps = [(s[1], s[2]) for s in plan.steps if s[0] == "split"]
    assert split_steps[0] == ("key", "v") and [k for k, _ in split_steps[1:4]] == ["click", "key", "click"]
    assert sum(1 for s in plan.steps if s[1:] == ("key", "]")) == 1, "eraser 0 -> 1 px: one press"
    assert plan.radii == {"brush": 3, "eraser": 1}
    with pytest.raises(ValueError, match="sizes"):
        plan.size(4)
