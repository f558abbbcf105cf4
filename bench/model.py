"""Benchmark of the models users get: accuracy through the product's predict path, and speed.

Every accuracy figure is measured with :func:`worker.evaluate.evaluate_predictor`, which calls
:func:`worker.predict.predict_image` — the function the round's predict job runs — with each
predictor's stored post-processing and scale handling (the image's nucleus size is estimated;
nothing here is tuned on the test images). Test sets:

* ``synthetic``: the project's own generator (default style, 2 channels, 512², 8 images);
* ``varied``: the varied synthetic families the generalist trains on, at their drawn scale
  (seeds it never saw);
* ``heldout``: a different generator (``bench/heldout_tissue.py``, never used for training);
* ``dsb``: the real DSB 2018 nuclei (``../shared/data/real/stardist_dsb2018``), nuclear only.

Prints a table, then as the LAST line one JSON object: ``generalist_f1``,
``generalist_nuclear_f1``, ``baseline_f1``, ``baseline_nuclear_f1`` (synthetic),
``generalist_nuclear_f1_dsb``, ``baseline_nuclear_f1_dsb``, the same for ``varied`` and
``heldout``, ``postprocess_s_2048`` and ``infer_mp_per_s``.

Run from the repository root:  python bench/model.py  [--model FILE.keras] [--skip infer ...]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from backend.core.synthetic import synthetic_tissue  # noqa: E402
from worker.evaluate import LabelledSet, evaluate_predictor  # noqa: E402

REAL = ROOT / ".." / "shared" / "data" / "real" / "stardist_dsb2018"


def synthetic_set(n: int, size: int, first_seed: int) -> LabelledSet:
    tissues = [synthetic_tissue(size, size, n_channels=2, seed=first_seed + i) for i in range(n)]
    return LabelledSet(np.stack([np.moveaxis(t.image, 0, -1) for t in tissues]).astype(np.float32),
                       np.stack([np.moveaxis(t.labels, 0, -1) for t in tissues]), False)


def varied_set(n: int, size: int) -> LabelledSet:
    from worker.model.generalist import varied_set as draw

    X, y, _ = draw(n, size, 7_000_000, at_reference=False)
    return LabelledSet(X, y, False)


def heldout_set(n: int, size: int) -> LabelledSet | None:
    try:
        from heldout_tissue import heldout_tissue
    except ImportError:
        return None
    kinds = ["polygonal", "cytoplasmic", "clustered"]
    pairs = [heldout_tissue(size, size, seed=500 + i, kind=kinds[i % len(kinds)]) for i in range(n)]
    return LabelledSet(np.stack([np.moveaxis(p[0], 0, -1) for p in pairs]).astype(np.float32),
                       np.stack([np.moveaxis(p[1], 0, -1) for p in pairs]).astype(np.int32), False)


def dsb_set() -> LabelledSet | None:
    import tifffile

    if not (REAL / "img2d.tif").exists():
        return None
    image = tifffile.imread(REAL / "img2d.tif").astype(np.float32)
    truth = tifffile.imread(REAL / "mask2d.tif").astype(np.int32)
    return LabelledSet(image[None, ..., None], np.stack([np.zeros_like(truth), truth], -1)[None],
                       True, 0, None)


def bench_postprocess(rows: list) -> float:
    from scipy import ndimage as ndi

    from worker.model.postprocess import postprocess_outputs
    from worker.model.transforms import targets_for

    tissue = synthetic_tissue(2048, 2048, n_channels=2, seed=2048)
    rng = np.random.default_rng(0)
    outputs = {}
    for name, value in targets_for(np.moveaxis(tissue.labels, 0, -1)[None]).items():
        value = ndi.gaussian_filter(value[0], (1.0, 1.0, 0)) + rng.normal(0, 0.02, value.shape[1:])
        if name.endswith("pixelwise"):
            value = np.clip(value, 1e-3, None)
            value /= value.sum(-1, keepdims=True)
        outputs[name] = value.astype(np.float32)
    times = []
    for _ in range(3):
        started = time.perf_counter()
        postprocess_outputs(outputs)
        times.append(time.perf_counter() - started)
    rows.append(("post-process 2048² (2 features, blurred + noisy maps), best of 3", f"{min(times):.3f} s"))
    return min(times)


def bench_inference(rows: list) -> float:
    import keras

    from worker.model.infer import predict_labels, predict_outputs
    from worker.model.panoptic import build_panoptic

    keras.utils.set_random_seed(0)
    model = build_panoptic(2, "resnet50")
    image = synthetic_tissue(1024, 1024, n_channels=2, seed=1024).image
    predict_outputs(model, image[:, :256, :256], tile=256, overlap=32, batch_size=4)  # trace
    started = time.perf_counter()
    predict_labels(model, image, tile=256, overlap=32, batch_size=4)
    seconds = time.perf_counter() - started
    rows.append(("inference 1024² ResNet50 (tile 256, overlap 32, batch 4)", f"{seconds:.1f} s, "
                 f"{1.048576 / seconds:.3f} MP/s, load {os.getloadavg()[0]:.1f}"))
    return 1.048576 / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="generalist",
                        help="generalist (default) or a .keras file with a .json card beside it")
    parser.add_argument("--images", type=int, default=8, help="test images per synthetic set")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--skip", nargs="*", default=[],
                        choices=["postprocess", "infer", "synthetic", "varied", "heldout", "dsb"])
    args = parser.parse_args()

    from worker.evaluate import resolve_predictor
    from worker.predict import BASELINE

    began = time.perf_counter()
    rows: list = []
    figures: dict = {}
    model = resolve_predictor(args.model)
    sets = {
        "synthetic": lambda: synthetic_set(args.images, args.size, 30_000),
        "varied": lambda: varied_set(args.images, args.size),
        "heldout": lambda: heldout_set(args.images, args.size),
        "dsb": dsb_set,
    }
    for name, make in sets.items():
        if name in args.skip:
            continue
        data = make()
        if data is None:
            rows.append((f"{name} test set", "not available, skipped"))
            continue
        suffix = "" if name == "synthetic" else f"_{name}"
        for label, predictor in (("generalist", model), ("baseline", BASELINE)):
            m = evaluate_predictor(predictor, data)
            if m["f1"] is not None:
                figures[f"{label}_f1{suffix}"] = m["f1"]
            figures[f"{label}_nuclear_f1{suffix}"] = m["nuclear_f1"]
            head = m["whole_cell"] if "whole_cell" in m else m["nuclear"]
            rows.append((f"{name} ({data.X.shape[0]} × {data.X.shape[1]}×{data.X.shape[2]}) {label}",
                         f"whole-cell F1 {m['f1'] if m['f1'] is not None else 'n/a'}, nuclear F1 "
                         f"{m['nuclear_f1']}, errors {head['errors']} ({m['seconds']} s)"))
    if "postprocess" not in args.skip:
        figures["postprocess_s_2048"] = round(bench_postprocess(rows), 3)
    if "infer" not in args.skip:
        figures["infer_mp_per_s"] = round(bench_inference(rows), 4)
    figures["model"] = model.name
    figures["total_minutes"] = round((time.perf_counter() - began) / 60, 2)
    width = max(len(name) for name, _ in rows)
    print()
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
