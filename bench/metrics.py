"""Speed and error-type accounting of backend.core.metrics on synthetic label images.

Builds a Voronoi "tissue" (jittered-grid seeds, 2 px background seams so cells touch across a
seam, some empty pockets), derives a prediction with a known number of injected merges (two
neighbouring cells under one id), splits (a cell cut through its centroid), misses (a cell
deleted), extras (a blob in an empty pocket) and 1 px boundary erosion of a third of the cells,
then times ``object_metrics`` (median of --repeats runs) at 512² / 300 cells and 2048² / 3000
cells. Prints a table, and as the last line one JSON object with ``metrics_s_512``,
``metrics_s_2048`` and the injected / detected counts.

Usage: python bench/metrics.py [--repeats 5] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a plain checkout

from backend.core.metrics import contingency, object_metrics  # noqa: E402

def _edges(labels: np.ndarray) -> np.ndarray:
    """Pixels with a 4-neighbour of another label, bool (H, W)."""
    edge = np.zeros(labels.shape, bool)
    horizontal = labels[:, 1:] != labels[:, :-1]
    vertical = labels[1:, :] != labels[:-1, :]
    edge[:, 1:] |= horizontal
    edge[:, :-1] |= horizontal
    edge[1:, :] |= vertical
    edge[:-1, :] |= vertical
    return edge


def voronoi_tissue(size: int, n_cells: int, rng: np.random.Generator):
    """Sequential labels (size, size) int32 with n_cells cells, pocket centres (k, 2), spacing."""
    n_side = math.ceil(math.sqrt(n_cells * 1.12))
    spacing = size / n_side
    centre = (np.arange(n_side) + 0.5) * spacing
    gy, gx = np.meshgrid(centre, centre, indexing="ij")
    jitter = rng.uniform(-0.35, 0.35, (n_side**2, 2)) * spacing
    seeds = np.stack([gy.ravel(), gx.ravel()], 1) + jitter
    seeds = np.clip(np.rint(seeds), 0, size - 1).astype(int)
    markers = np.zeros((size, size), np.int32)
    markers[seeds[:, 0], seeds[:, 1]] = np.arange(1, len(seeds) + 1)
    _, (iy, ix) = ndimage.distance_transform_edt(markers == 0, return_indices=True)
    labels = markers[iy, ix]
    labels[_edges(labels)] = 0  # 2 px seams: neighbouring cells touch across them
    holes = rng.choice(len(seeds), len(seeds) - n_cells, replace=False)
    keep = np.ones(len(seeds) + 1, bool)
    keep[holes + 1] = False
    keep[0] = False
    labels[~keep[labels]] = 0
    return labels, seeds[holes], spacing


def inject_errors(truth: np.ndarray, pockets: np.ndarray, spacing: float, n_each: int,
                  rng: np.random.Generator) -> tuple[np.ndarray, dict[str, int]]:
    """Prediction (sequential ids) from sequential truth with n_each of every error injected."""
    ids = np.unique(truth)[1:]
    a = np.concatenate([truth[:, :-3].ravel(), truth[:-3, :].ravel()])
    b = np.concatenate([truth[:, 3:].ravel(), truth[3:, :].ravel()])
    touching = np.unique(np.stack([a, b], 1)[(a != 0) & (b != 0) & (a != b)], axis=0)
    used: set[int] = set()
    merges = []
    for x, y in touching[rng.permutation(len(touching))].tolist():
        if len(merges) < n_each and x not in used and y not in used:
            merges.append((x, y))
            used.update((x, y))
    free = rng.permutation([i for i in ids.tolist() if i not in used])
    splits, misses = free[:n_each], free[n_each:2 * n_each]
    lut = np.arange(truth.max() + 1)
    for x, y in merges:
        lut[y] = x
    lut[misses] = 0
    pred = lut[truth]
    next_id = int(truth.max()) + 1
    slices = ndimage.find_objects(truth)
    for i in splits:  # cut along a random line through the centroid
        window = slices[i - 1]
        mask = truth[window] == i
        yy, xx = np.nonzero(mask)
        angle = rng.uniform(0, np.pi)
        side = (yy - yy.mean()) * np.cos(angle) - (xx - xx.mean()) * np.sin(angle) > 0
        pred[window][yy[side], xx[side]] = next_id
        next_id += 1
    eroded = np.zeros(next_id + len(pockets), bool)  # 1 px erosion of a third of the cells
    eroded[rng.choice(np.arange(1, next_id), (next_id - 1) // 3, replace=False)] = True
    pred[_edges(pred) & eroded[pred]] = 0
    radius, placed = 0.3 * spacing, 0
    r = int(math.ceil(radius))
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    disc = yy**2 + xx**2 <= radius**2
    for cy, cx in pockets[rng.permutation(len(pockets))].tolist():
        if placed == n_each or not (r <= cy < truth.shape[0] - r and r <= cx < truth.shape[1] - r):
            continue
        window = (slice(cy - r, cy + r + 1), slice(cx - r, cx + r + 1))
        blob = disc & (truth[window] == 0) & (pred[window] == 0)  # background only
        if blob.sum() >= 20:
            pred[window][blob] = next_id
            next_id += 1
            placed += 1
    if min(len(merges), len(splits), len(misses), placed) < n_each:
        raise RuntimeError("image too small to inject every error; lower n_each")
    return pred, {"merge": len(merges), "split": len(splits), "missed": len(misses),
                  "gained": placed}


def scatter_ids(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The same objects under random non-sequential int32 ids (0 stays background)."""
    table = (rng.choice(2**31 - 2, int(labels.max()) + 1, replace=False) + 1).astype(np.int32)
    table[0] = 0
    return table[labels]


def run_case(size: int, n_cells: int, n_each: int, repeats: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    truth, pockets, spacing = voronoi_tissue(size, n_cells, rng)
    pred, injected = inject_errors(truth, pockets, spacing, n_each, rng)
    truth, pred = scatter_ids(truth, rng), scatter_ids(pred, rng)
    times, cont_times = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = object_metrics(truth, pred)
        times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        contingency(truth, pred)
        cont_times.append(time.perf_counter() - t0)
    n_true = int(np.unique(truth).size - 1)
    injected["catastrophe"] = 0
    injected["correct"] = n_true - 2 * injected["merge"] - injected["split"] - injected["missed"]
    detected = {k: getattr(result, k) for k in ("merge", "split", "missed", "gained",
                                                "catastrophe", "correct")}
    return {"size": size, "n_true": n_true, "n_pred": result.n_pred,
            "metrics_s": float(np.median(times)), "contingency_s": float(np.median(cont_times)),
            "injected": injected, "detected": detected, "f1": result.f1, "ap50": result.ap50,
            "map": result.map, "jaccard": result.jaccard}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    cases = [run_case(512, 300, 10, args.repeats, args.seed),
             run_case(2048, 3000, 100, args.repeats, args.seed + 1)]
    print(f"object_metrics, median of {args.repeats} runs "
          f"(python {platform.python_version()}, numpy {np.__version__})")
    print(f"{'image':>10} {'cells':>6} {'metrics s':>10} {'contingency s':>14} "
          f"{'F1':>6} {'AP50':>6} {'mAP':>6} {'Jaccard':>8}")
    for c in cases:
        print(f"{c['size']:>5}x{c['size']:<4} {c['n_true']:>6} {c['metrics_s']:>10.4f} "
              f"{c['contingency_s']:>14.4f} {c['f1']:>6.3f} {c['ap50']:>6.3f} {c['map']:>6.3f} "
              f"{c['jaccard']:>8.3f}")
    print(f"\n{'error type':>12} " + " ".join(f"{c['size']:>5} inj/det" for c in cases))
    for kind in ("correct", "missed", "gained", "split", "merge", "catastrophe"):
        row = " ".join(f"{c['injected'][kind]:>6}/{c['detected'][kind]:<6}" for c in cases)
        print(f"{kind:>12} {row}")
    summary = {"metrics_s_512": round(cases[0]["metrics_s"], 4),
               "metrics_s_2048": round(cases[1]["metrics_s"], 4),
               "contingency_s_512": round(cases[0]["contingency_s"], 4),
               "contingency_s_2048": round(cases[1]["contingency_s"], 4)}
    for c in cases:
        summary[f"injected_{c['size']}"] = c["injected"]
        summary[f"detected_{c['size']}"] = c["detected"]
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
