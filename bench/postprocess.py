"""Benchmark of the deep-watershed post-processing: the product's path, and the algorithm against
its scikit-image definition.

The image is a 2048 x 2048 synthetic tissue (``synthetic_tissue(2048, 2048, n_channels=2,
seed=2048)``, about 11,000 cells and 10,000 nuclei; nuclei of about 9 px). Model-like outputs are
made from its true labels:

* ``clean``: the exact training targets;
* ``noisy``: the targets blurred (Gaussian sigma 1 px) plus per-pixel noise sigma 0.02, the
  recipe of ``bench/model.py``;
* ``smoothed``: the noisy outputs post-processed with ``maxima_smoothing=1``.

**Product path** (the headline): what :func:`worker.predict.predict_image` does with the shipped
generalist when its network is replaced by these noisy maps — the image's zoom to the model's
scale (:func:`worker.predict.image_scale_factor`, from the estimated nucleus diameter), noisy
maps of the true labels at that scale (a network's blur and noise are in its own pixels), the
generalist's stored post-processing (:func:`worker.predict.labels_from_outputs`), and the labels
brought back to the image (:func:`worker.predict.labels_to_image`), scored against the truth.

**Native scale** (``native_*``): the maps at the image's own pixels with the default parameters,
for :func:`worker.model.postprocess.deep_watershed` (ours) and
:func:`worker.model.postprocess.reference_deep_watershed` (scikit-image's ``h_maxima`` and
``watershed``, same mask, same clean-up) on both features, one after the other in one thread.

It prints a table, then as the LAST line one JSON object:

* ``noisy_f1`` / ``noisy_f1_nuclear``: F1 (IoU 0.5) against the true labels, product path;
* ``noisy_objects_ratio`` (``_nuclear``): objects found / true objects, product path;
  ``product_zoom``: the zoom the product chose;
* ``speedup_vs_reference``: reference seconds / our seconds on the native noisy maps, both
  features, best of 3 each (wall clock); ``speedup_vs_reference_cpu``: the same in CPU seconds of
  this process, less sensitive to other work on the machine;
* ``native_noisy_identical_to_reference``: our label images equal the reference's, pixel for
  pixel; ``native_noisy_f1_vs_reference``: F1 of ours against the reference's;
* ``native_{kind}_f1``, ``_objects_ratio``, ``_seconds``, ``_reference_seconds`` … per kind;
* ``native_noisy_f1_radius2`` (``_objects_ratio_radius2``): ours with ``radius=2``,
  deepcell-toolbox's ``footprint=disk(radius)`` default, for comparison with ``radius=1``.

Run from the repository root:  python bench/postprocess.py  [--repeats 3] [--size 2048]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backend.core.metrics import object_metrics  # noqa: E402
from backend.core.synthetic import synthetic_tissue  # noqa: E402
from worker.model.postprocess import deep_watershed, reference_deep_watershed  # noqa: E402
from worker.model.scale import resample_image, resample_labels  # noqa: E402
from worker.model.transforms import FEATURES, targets_for  # noqa: E402
from worker.predict import (  # noqa: E402
    generalist_predictor,
    image_scale_factor,
    labels_from_outputs,
    labels_to_image,
)

KINDS = ("noisy", "clean", "smoothed")


def model_like_outputs(labels: np.ndarray, kind: str, seed: int = 0) -> dict:
    """Targets of a (2, H, W) label stack; ``noisy``: blurred and noisy like a network's."""
    rng = np.random.default_rng(seed)
    outputs = {}
    for name, value in targets_for(np.moveaxis(labels, 0, -1)[None]).items():
        value = value[0]
        if kind != "clean":
            value = ndi.gaussian_filter(value, (1.0, 1.0, 0))
            value = value + rng.normal(0, 0.02, value.shape).astype(np.float32)
            if name.endswith("pixelwise"):
                value = np.clip(value, 1e-3, None)
                value /= value.sum(-1, keepdims=True)
        outputs[name] = value.astype(np.float32)
    return outputs


def run(function, outputs: dict, **options) -> tuple[np.ndarray, float, float]:
    """Both features, one after the other: (labels (2, H, W), wall seconds, CPU seconds)."""
    wall, cpu = time.perf_counter(), time.process_time()
    labels = np.stack([
        function(outputs[f"{feature}_distance"][..., 0], outputs[f"{feature}_pixelwise"][..., 1],
                 background=outputs[f"{feature}_pixelwise"][..., 0], **options)
        for feature in FEATURES])
    return labels, time.perf_counter() - wall, time.process_time() - cpu


def best_of(repeats: int, function, outputs: dict, **options):
    results = [run(function, outputs, **options) for _ in range(repeats)]
    return results[0][0], min(r[1] for r in results), min(r[2] for r in results)


def bench_kind(kind: str, truth: np.ndarray, repeats: int, rows: list) -> dict:
    outputs = model_like_outputs(truth, kind)
    options = {"maxima_smoothing": 1.0} if kind == "smoothed" else {}
    ours, wall, cpu = best_of(repeats, deep_watershed, outputs, **options)
    reference, ref_wall, ref_cpu = best_of(repeats, reference_deep_watershed, outputs, **options)
    whole, nuclear = (object_metrics(truth[f], ours[f]) for f in range(2))
    vs_reference = [object_metrics(reference[f], ours[f]) for f in range(2)]
    identical = bool(np.array_equal(ours, reference))
    kind = f"native_{kind}"
    figures = {
        f"{kind}_f1": whole.f1,
        f"{kind}_f1_nuclear": nuclear.f1,
        f"{kind}_objects_ratio": whole.n_pred / max(whole.n_true, 1),
        f"{kind}_objects_ratio_nuclear": nuclear.n_pred / max(nuclear.n_true, 1),
        f"{kind}_identical_to_reference": identical,
        f"{kind}_f1_vs_reference": min(m.f1 for m in vs_reference),
        f"{kind}_seconds": wall,
        f"{kind}_reference_seconds": ref_wall,
        f"{kind}_speedup": ref_wall / wall,
        f"{kind}_speedup_cpu": ref_cpu / cpu,
    }
    agree = float(np.mean(ours == reference))
    rows.append((f"{kind}: F1 vs truth (whole-cell, nuclear)",
                 f"{whole.f1:.4f}, {nuclear.f1:.4f}"))
    rows.append((f"  objects found / true (whole-cell, nuclear)",
                 f"{whole.n_pred}/{whole.n_true} = {figures[f'{kind}_objects_ratio']:.3f}, "
                 f"{nuclear.n_pred}/{nuclear.n_true} = "
                 f"{figures[f'{kind}_objects_ratio_nuclear']:.3f}"))
    rows.append((f"  same as the scikit-image reference",
                 "identical label images" if identical else
                 f"{agree:.5f} of pixels, F1 {figures[f'{kind}_f1_vs_reference']:.4f}, "
                 f"objects {ours[0].max()}/{reference[0].max()}, "
                 f"{ours[1].max()}/{reference[1].max()} (ties of the flood)"))
    rows.append((f"  seconds, both features, best of {repeats} (ours | reference)",
                 f"{wall:.2f} | {ref_wall:.2f}  → {ref_wall / wall:.1f}× "
                 f"(CPU {cpu:.2f} | {ref_cpu:.2f} → {ref_cpu / cpu:.1f}×)"))
    return figures


def product_path(image: np.ndarray, truth: np.ndarray, rows: list) -> dict:
    """Noisy maps through the rest of the product's predict path with the shipped generalist's
    zoom and post-processing (see the module docstring); F1 and object ratios against the truth."""
    predictor = generalist_predictor()
    zoom = image_scale_factor(predictor, image)
    shape = resample_image(image[:1], zoom).shape[1:]
    outputs = model_like_outputs(resample_labels(truth, shape), "noisy")
    labels = labels_to_image(labels_from_outputs(predictor, outputs, FEATURES), truth.shape[1:])
    whole, nuclear = (object_metrics(truth[f], labels[f]) for f in range(2))
    rows.append(("product path (generalist's zoom and post-processing), noisy: F1 (whole-cell, nuclear)",
                 f"{whole.f1:.4f}, {nuclear.f1:.4f} at zoom {zoom:.2f} ({shape[0]}² maps)"))
    rows.append(("  objects found / true (whole-cell, nuclear)",
                 f"{whole.n_pred}/{whole.n_true} = {whole.n_pred / max(whole.n_true, 1):.3f}, "
                 f"{nuclear.n_pred}/{nuclear.n_true} = {nuclear.n_pred / max(nuclear.n_true, 1):.3f}"))
    return {"noisy_f1": whole.f1, "noisy_f1_nuclear": nuclear.f1,
            "noisy_objects_ratio": whole.n_pred / max(whole.n_true, 1),
            "noisy_objects_ratio_nuclear": nuclear.n_pred / max(nuclear.n_true, 1),
            "product_zoom": zoom}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", type=int, default=2048)
    args = parser.parse_args()

    began = time.perf_counter()
    tissue = synthetic_tissue(args.size, args.size, n_channels=2, seed=args.size)
    truth = tissue.labels
    counts = [len(np.unique(truth[f])) - 1 for f in range(2)]
    rows: list = [("image", f"{args.size}² synthetic tissue, {counts[0]} cells, {counts[1]} "
                            f"nuclei; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} "
                            "CPUs")]
    figures: dict = {}
    for kind in KINDS:
        figures.update(bench_kind(kind, truth, args.repeats, rows))
    radius2, *_ = run(deep_watershed, model_like_outputs(truth, "noisy"), radius=2)
    whole2 = object_metrics(truth[0], radius2[0])
    figures["native_noisy_f1_radius2"] = whole2.f1
    figures["native_noisy_objects_ratio_radius2"] = whole2.n_pred / max(whole2.n_true, 1)
    rows.append(("native noisy, radius=2 (deepcell's disk(2) footprint): F1, objects / true",
                 f"{whole2.f1:.4f}, {figures['native_noisy_objects_ratio_radius2']:.3f}"))
    product = product_path(tissue.image, truth, rows)
    headline = {**product,
                "speedup_vs_reference": figures["native_noisy_speedup"],
                "speedup_vs_reference_cpu": figures["native_noisy_speedup_cpu"]}
    figures = {**headline, **figures, "total_minutes": (time.perf_counter() - began) / 60}

    width = max(len(name) for name, _ in rows)
    print()
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v)
                      for k, v in figures.items()}))


if __name__ == "__main__":
    main()
