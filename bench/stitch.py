"""Speed and exactness of crop_stack (backend.core.tiling) and stitch_crops (backend.core.stitch).

For each image shape (2048x2048 with 3,000 cells, 4096x2048 and 1000x3000 at the same cell
density) and each variant ("seams": cells separated by 2-px background seams; "touching": no
seams, every cell touches its neighbours), builds an int32 whole-cell label image (8-connected
cells) and a nuclear one (a disc around each seed), plans 270-px crops with overlap 0.1 (27 px),
then, median of --repeats runs each:

* crop_s    ``crop_stack`` of the (1, H, W) whole-cell label image;
* stitch_s  ``stitch_crops`` of those crops back (ids as cut from the image);
* f2 columns the same for the (2, H, W) whole-cell + nuclear stack;
* cpu_ms    the process CPU time of one stitch (median), which other jobs on a shared machine
            inflate less than wall time (the load average is printed in the header);
* faults    minor page faults of one stitch (median): fresh memory the kernel had to zero,
            counted in cpu_ms as system time (the output labels alone are 4 bytes per pixel and
            feature; large temporaries that malloc hands back between calls add to it).

Exactness is checked on crops whose ids were renumbered independently per crop (a random
permutation, as annotators' editors do): ``cells_differing`` counts original cells that are not
reproduced one-to-one (any cell that is split, merged, shrunk or grown), summed over both
features and both variants; ``conflicts`` counts conflict pixels (must be 0 for consistent crops).

Prints a table, and as the last line one JSON object with crop_s_*, stitch_s_*,
cells_differing_* for 2048, 4096x2048 and 1000x3000 (time figures: the slower variant).

Usage: python bench/stitch.py [--repeats 5] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage
from skimage.measure import label as connected_label

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a plain checkout

from backend.core.stitch import stitch_crops  # noqa: E402
from backend.core.tiling import crop_plan, crop_stack  # noqa: E402

SHAPES = {"2048": (2048, 2048), "4096x2048": (4096, 2048), "1000x3000": (1000, 3000)}
CELLS_PER_PX = 3000 / 2048**2
CROP_SIZE, OVERLAP = 270, 27


def voronoi_stack(shape: tuple[int, int], seams: bool, rng: np.random.Generator) -> np.ndarray:
    """(2, H, W) int32: Voronoi whole-cell labels (8-connected cells) and nuclear discs."""
    height, width = shape
    n_seeds = round(CELLS_PER_PX * height * width)
    markers = np.zeros(shape, np.int32)
    markers[rng.integers(0, height, n_seeds), rng.integers(0, width, n_seeds)] = np.arange(
        1, n_seeds + 1
    )
    distance, (iy, ix) = ndimage.distance_transform_edt(markers == 0, return_indices=True)
    cells = markers[iy, ix]
    if seams:  # both sides of every boundary -> a 2-px background seam
        edge = np.zeros(shape, bool)
        dy, dx = cells[1:] != cells[:-1], cells[:, 1:] != cells[:, :-1]
        edge[1:] |= dy
        edge[:-1] |= dy
        edge[:, 1:] |= dx
        edge[:, :-1] |= dx
        cells[edge] = 0
    cells = connected_label(cells, background=0, connectivity=2).astype(np.int32)
    nuclei = np.where(distance <= 6, cells, 0).astype(np.int32)
    return np.stack([cells, nuclei])


def renumbered(crops: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """Copies of (F, h, w) crops with each crop's ids replaced by a random permutation of 1..n."""
    out = []
    for crop in crops:
        crop = crop.copy()
        for f in range(crop.shape[0]):
            ids, inverse = np.unique(crop[f], return_inverse=True)
            new = rng.permutation(ids.size).astype(np.int32) + 1
            new[ids == 0] = 0
            crop[f] = new[inverse.reshape(crop[f].shape)]
        out.append(crop)
    return out


def cells_differing(truth: np.ndarray, result: np.ndarray) -> int:
    """Cells of ``truth`` (H, W) not reproduced one-to-one in ``result`` (H, W)."""
    t, r = truth.ravel().astype(np.int64), result.ravel().astype(np.int64)
    pairs = np.unique(t * (int(r.max()) + 1) + r)
    pt, pr = pairs // (int(r.max()) + 1), pairs % (int(r.max()) + 1)
    partners_t = np.bincount(pt, minlength=int(t.max()) + 1)
    partners_r = np.bincount(pr, minlength=int(r.max()) + 1)
    good = (pt > 0) & (pr > 0) & (partners_t[pt] == 1) & (partners_r[pr] == 1)
    n_cells = np.count_nonzero(np.bincount(t)[1:])
    return int(n_cells - np.count_nonzero(good))


def median_time(fn, repeats: int) -> tuple[float, object, float, float]:
    """Median wall time (s) of ``repeats`` calls, the last result, median CPU time (s), median
    minor page faults."""
    times, cpu, faults, result = [], [], [], None
    for _ in range(repeats):
        start_faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        start, start_cpu = time.perf_counter(), time.process_time()
        result = fn()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start_faults)
    return statistics.median(times), result, statistics.median(cpu), statistics.median(faults)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)

    print(f"stitch bench: crop {CROP_SIZE} px, overlap {OVERLAP} px, median of {args.repeats}")
    print(
        f"python {platform.python_version()}, numpy {np.__version__}, {platform.machine()}, "
        f"{os.cpu_count()} cpus, load average {os.getloadavg()[0]:.2f} before the run"
    )
    header = (
        f"{'image':>10} {'variant':>9} {'cells':>6} {'crops':>5} {'crop_s':>8} {'stitch_s':>9} "
        f"{'cpu_ms':>7} {'faults':>6} {'crop_s f2':>9} {'stitch_s f2':>11} {'cpu_ms f2':>9} "
        f"{'differing':>9} {'conflicts':>9}"
    )
    print(header)
    print("-" * len(header))
    summary: dict[str, float | int] = {}
    for name, shape in SHAPES.items():
        plan = crop_plan(shape, CROP_SIZE, OVERLAP)
        worst = dict.fromkeys(
            ("crop_s", "stitch_s", "stitch_cpu_s", "crop_s_f2", "stitch_s_f2", "stitch_cpu_s_f2"),
            0.0,
        )
        differing = 0
        for variant in ("seams", "touching"):
            stack = voronoi_stack(shape, seams=variant == "seams", rng=rng)
            whole = stack[:1]
            crop_s, crops, *_ = median_time(lambda: crop_stack(whole, plan), args.repeats)
            stitch_s, _, cpu, faults = median_time(
                lambda: stitch_crops(plan, crops, shape), args.repeats
            )
            crop_s2, crops2, *_ = median_time(lambda: crop_stack(stack, plan), args.repeats)
            stitch_s2, _, cpu2, _ = median_time(
                lambda: stitch_crops(plan, crops2, shape), args.repeats
            )
            result = stitch_crops(plan, renumbered(crops2, rng), shape)
            n_diff = sum(cells_differing(stack[f], result.labels[f]) for f in range(2))
            differing += n_diff
            for key, value in zip(worst, (crop_s, stitch_s, cpu, crop_s2, stitch_s2, cpu2)):
                worst[key] = max(worst[key], value)
            print(
                f"{name:>10} {variant:>9} {int(stack[0].max()):>6} {len(plan):>5} "
                f"{crop_s:>8.4f} {stitch_s:>9.4f} {cpu * 1e3:>7.1f} {faults:>6.0f} "
                f"{crop_s2:>9.4f} {stitch_s2:>11.4f} {cpu2 * 1e3:>9.1f} {n_diff:>9} "
                f"{result.n_conflict_pixels:>9}"
            )
        for key, value in worst.items():
            summary[f"{key}_{name}"] = round(value, 5)
        summary[f"cells_differing_{name}"] = differing
    print(
        "crop_s/stitch_s: (1, H, W) whole-cell label image; f2: (2, H, W) whole-cell + nuclear; "
        "differing/conflicts: after per-crop renumbering, both features"
    )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
