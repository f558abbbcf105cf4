"""Benchmark of the model package: post-processing speed, inference speed, accuracy.

Prints a human-readable table, then as the LAST line one JSON object with

* ``postprocess_s_2048``: seconds of ``postprocess_outputs`` (both features) on a 2048 x 2048
  synthetic tissue (model-like outputs: perfect targets, blurred, with noise), best of 3;
* ``infer_mp_per_s``: megapixels per second of ``predict_labels`` (normalise, tile, ResNet50
  PanopticNet with random weights, blend, post-process) on a 1024 x 1024 image;
* ``f1_baseline`` / ``f1_trained``: whole-cell F1 (IoU 0.5, pooled over the images) on a
  held-out synthetic test set, of the classical baseline and of a small-backbone PanopticNet
  trained here on synthetic tiles (``*_nuclear`` keys: the same for nuclei). The trained
  model's post-processing options (maxima threshold and smoothing, per feature) are chosen
  on the validation images; ``*_mesmer_defaults`` keys give its F1 with Mesmer's defaults;
* ``f1_nuclear_real_baseline`` / ``f1_nuclear_real_trained``: nuclear F1 on the real DSB 2018
  image with manual labels (../shared/data/real/stardist_dsb2018, see SOURCES.md there).

Run from the repository root:  python bench/model.py  [--steps 1500 --train-images 48 ...]
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

from backend.core.metrics import aggregate, object_metrics  # noqa: E402
from backend.core.synthetic import synthetic_tissue  # noqa: E402
from worker.model.baseline import segment_baseline  # noqa: E402
from worker.model.postprocess import postprocess_outputs  # noqa: E402
from worker.model.transforms import targets_for  # noqa: E402

REAL = ROOT / ".." / "shared" / "data" / "real" / "stardist_dsb2018"
N_CHANNELS = 2  # DAPI + membrane, the Mesmer setting


def model_like_outputs(labels: np.ndarray, rng: np.random.Generator) -> dict:
    """Targets of a (2, H, W) label stack, blurred and noisy like a network's outputs."""
    outputs = {}
    for name, value in targets_for(np.moveaxis(labels, 0, -1)[None]).items():
        value = ndi.gaussian_filter(value[0], (1.0, 1.0, 0))
        value += rng.normal(0, 0.02, value.shape).astype(np.float32)
        if name.endswith("pixelwise"):
            value = np.clip(value, 1e-3, None)
            value /= value.sum(-1, keepdims=True)
        outputs[name] = value.astype(np.float32)
    return outputs


def bench_postprocess(rows: list) -> float:
    tissue = synthetic_tissue(2048, 2048, n_channels=N_CHANNELS, seed=2048)
    outputs = model_like_outputs(tissue.labels, np.random.default_rng(0))
    times = []
    for _ in range(3):
        started = time.perf_counter()
        labels = postprocess_outputs(outputs)
        times.append(time.perf_counter() - started)
    cpu = []
    for _ in range(3):
        started = time.process_time()
        postprocess_outputs(outputs, parallel=False)
        cpu.append(time.process_time() - started)
    f1 = [object_metrics(tissue.labels[f], labels[f]).f1 for f in range(2)]
    rows.append(("post-process 2048² (2 features), best of 3", f"{min(times):.3f} s"))
    rows.append(("  CPU seconds of the same work in one thread, best of 3", f"{min(cpu):.3f} s"))
    rows.append(("  load average of the machine meanwhile (1 min)", f"{os.getloadavg()[0]:.1f}"))
    rows.append(("  cells in the image (whole-cell)", f"{int(tissue.whole_cell.max())}"))
    rows.append(("  F1 vs truth of blurred+noisy targets (wc, nuc)", f"{f1[0]:.3f}, {f1[1]:.3f}"))
    return min(times), min(cpu)


def bench_inference(rows: list) -> float:
    import keras

    from worker.model.infer import predict_labels, predict_outputs
    from worker.model.panoptic import build_panoptic

    keras.utils.set_random_seed(0)
    model = build_panoptic(N_CHANNELS, "resnet50")
    image = synthetic_tissue(1024, 1024, n_channels=N_CHANNELS, seed=1024).image
    predict_outputs(model, image[:, :256, :256], tile=256, overlap=32, batch_size=4)  # trace
    started = time.perf_counter()
    predict_labels(model, image, tile=256, overlap=32, batch_size=4)
    seconds = time.perf_counter() - started
    megapixels = image.shape[1] * image.shape[2] / 1e6
    rows.append(("inference 1024² ResNet50 (tile 256, overlap 32, batch 4)", f"{seconds:.1f} s"))
    rows.append(("  megapixels per second, end to end", f"{megapixels / seconds:.3f}"))
    return megapixels / seconds


def synthetic_split(n_images: int, size: int, first_seed: int):
    tissues = [synthetic_tissue(size, size, n_channels=N_CHANNELS, seed=first_seed + i)
               for i in range(n_images)]
    X = np.stack([np.moveaxis(t.image, 0, -1) for t in tissues]).astype(np.float32)
    y = np.stack([np.moveaxis(t.labels, 0, -1) for t in tissues])
    return X, y


def pooled_f1(truths, predictions, feature: int) -> float:
    return aggregate([object_metrics(t[..., feature], p[feature])
                      for t, p in zip(truths, predictions)]).f1


#: Post-processing options tried per feature on the validation images after training.
TUNING_GRID = [{"maxima_threshold": t, "maxima_smoothing": m}
               for t in (0.02, 0.035, 0.05, 0.075, 0.1, 0.15) for m in (0.0, 1.0)]


def tune_postprocess(outputs: list[dict], truths: np.ndarray) -> dict:
    """Per feature, the grid options with the best pooled F1 on the validation images."""
    chosen = {}
    for f, feature in enumerate(("whole_cell", "nuclear")):
        scores = []
        for options in TUNING_GRID:
            labels = [postprocess_outputs(o, features=(feature,), **options) for o in outputs]
            scores.append(aggregate([object_metrics(t[..., f], lab[0])
                                     for t, lab in zip(truths, labels)]).f1)
        chosen[feature] = TUNING_GRID[int(np.argmax(scores))]
    return chosen


def median_nucleus_area(nuclear_labels: list[np.ndarray]) -> float:
    areas = np.concatenate([np.bincount(n.ravel())[1:] for n in nuclear_labels])
    return float(np.median(areas[areas > 0]))


def train_and_evaluate(args, rows: list) -> dict:
    import keras

    from worker.model.infer import predict_outputs
    from worker.model.train import train_model

    X_train, y_train = synthetic_split(args.train_images, args.size, 10_000)
    # channel dropout: some training images without their membrane channel, so that the
    # model also segments nuclei from a nuclear stain alone (the real image below)
    n_blank = int(round(args.blank_membrane * args.train_images))
    X_train[:n_blank, ..., 1] = 0
    X_val, y_val = synthetic_split(args.val_images, args.size, 20_000)
    X_test, y_test = synthetic_split(args.test_images, args.size, 30_000)

    baseline = [segment_baseline(np.moveaxis(x, -1, 0)) for x in X_test]
    keras.utils.set_random_seed(args.seed)
    started = time.perf_counter()

    def report(epoch, n_epochs, logs):
        print(f"  epoch {epoch}/{n_epochs}: loss {logs['loss']:.4f} val_loss "
              f"{logs['val_loss']:.4f} ({time.perf_counter() - started:.0f} s)", flush=True)

    model, history = train_model(
        None, X_train, y_train, X_val, y_val, n_channels=N_CHANNELS, backbone="small",
        steps=args.steps, batch_size=args.batch_size, lr=args.lr, on_epoch=report,
        seed=args.seed, steps_per_epoch=args.steps_per_epoch, crop_size=args.crop,
    )
    minutes = (time.perf_counter() - started) / 60
    if args.save_model:
        model.save(args.save_model)
    # post-processing options chosen on the validation images, never on the test images
    val_outputs = [predict_outputs(model, np.moveaxis(x, -1, 0), tile=args.size, overlap=0)
                   for x in X_val]
    tuned = tune_postprocess(val_outputs, y_val)
    test_outputs = [predict_outputs(model, np.moveaxis(x, -1, 0), tile=args.size, overlap=0)
                    for x in X_test]
    trained = [postprocess_outputs(o, feature_kwargs=tuned) for o in test_outputs]
    defaults = [postprocess_outputs(o) for o in test_outputs]
    result = {
        "f1_baseline": pooled_f1(y_test, baseline, 0),
        "f1_trained": pooled_f1(y_test, trained, 0),
        "f1_baseline_nuclear": pooled_f1(y_test, baseline, 1),
        "f1_trained_nuclear": pooled_f1(y_test, trained, 1),
        "f1_trained_mesmer_defaults": pooled_f1(y_test, defaults, 0),
        "f1_trained_nuclear_mesmer_defaults": pooled_f1(y_test, defaults, 1),
        "postprocess_tuned": tuned,
        "train_images": args.train_images,
        "train_images_without_membrane": n_blank,
        "train_image_size": args.size,
        "train_crop": args.crop,
        "train_steps": history["steps"],
        "train_batch_size": args.batch_size,
        "train_lr": args.lr,
        "train_minutes": round(minutes, 2),
        "train_best_epoch": history["best_epoch"],
        "train_epochs": history["epochs"],
        "train_gpu": history["gpu"],
    }
    rows.append((f"training: {args.train_images} synthetic {args.size}² images "
                 f"({n_blank} without membrane), small backbone",
                 f"{history['steps']} steps × {args.batch_size} ({args.crop}² crops), "
                 f"lr {args.lr}, {minutes:.1f} min, best epoch {history['best_epoch']}"
                 f"/{history['epochs']}, GPU: {history['gpu']}"))
    rows.append(("post-processing chosen on the validation images", json.dumps(tuned)))
    rows.append((f"synthetic test set ({args.test_images} × {args.size}²) whole-cell F1",
                 f"baseline {result['f1_baseline']:.3f} | trained {result['f1_trained']:.3f} "
                 f"(Mesmer defaults: {result['f1_trained_mesmer_defaults']:.3f})"))
    rows.append(("synthetic test set nuclear F1",
                 f"baseline {result['f1_baseline_nuclear']:.3f} | trained "
                 f"{result['f1_trained_nuclear']:.3f} (Mesmer defaults: "
                 f"{result['f1_trained_nuclear_mesmer_defaults']:.3f})"))
    result["_model"] = model
    result["_nuclear_options"] = tuned["nuclear"]
    result["_train_nucleus_area"] = median_nucleus_area([y[..., 1] for y in y_train])
    return result


def evaluate_real(model, train_nucleus_area: float | None, nuclear_options: dict | None,
                  rows: list) -> dict:
    import tifffile

    if not (REAL / "img2d.tif").exists():
        rows.append(("real DSB 2018 image", "not found, skipped"))
        return {}
    image = tifffile.imread(REAL / "img2d.tif").astype(np.float32)
    truth = tifffile.imread(REAL / "mask2d.tif").astype(np.int32)
    baseline = segment_baseline(image[None], membrane_channel=None)[1]
    result = {"f1_nuclear_real_baseline": object_metrics(truth, baseline).f1}
    rows.append(("real DSB 2018 nuclei (512², 125 nuclei) baseline F1",
                 f"{result['f1_nuclear_real_baseline']:.3f}"))
    if model is None:
        return result
    from worker.model.infer import predict_labels

    # Resolution matching (like Mesmer's image_mpp): scale the image so that its nuclei,
    # sized by the baseline's segmentation (no ground truth used), match the training nuclei.
    scale = float(np.sqrt(train_nucleus_area / median_nucleus_area([baseline])))
    scale = float(np.clip(scale, 0.2, 5.0))
    small = ndi.zoom(image, scale, order=1)
    stack = np.stack([small, np.zeros_like(small)])  # no membrane channel: zeros
    labels = predict_labels(model, stack, tile=256, overlap=32,
                            feature_kwargs={"nuclear": nuclear_options or {}})[1]
    # nearest-neighbour back to the original grid
    back = np.clip((np.arange(image.shape[0]) + 0.5) * scale, 0, labels.shape[0] - 1).astype(int)
    labels = labels[np.ix_(back, back)]
    result["f1_nuclear_real_trained"] = object_metrics(truth, labels).f1
    result["real_scale"] = round(scale, 3)
    rows.append((f"  trained model F1 (image scaled ×{scale:.2f}, membrane = 0)",
                 f"{result['f1_nuclear_real_trained']:.3f}"))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-images", type=int, default=48)
    parser.add_argument("--val-images", type=int, default=6)
    parser.add_argument("--test-images", type=int, default=8)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--steps-per-epoch", type=int, default=150)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--blank-membrane", type=float, default=0.2,
                        help="fraction of training images with the membrane channel zeroed")
    parser.add_argument("--save-model", default="", help="save the trained model (.keras)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["postprocess", "infer", "train"])
    args = parser.parse_args()

    rows: list = []
    figures: dict = {}
    began = time.perf_counter()
    if "postprocess" not in args.skip:
        wall, cpu = bench_postprocess(rows)
        figures["postprocess_s_2048"] = round(wall, 3)
        figures["postprocess_cpu_s_2048"] = round(cpu, 3)
    if "infer" not in args.skip:
        figures["infer_mp_per_s"] = round(bench_inference(rows), 4)
    model, nucleus_area, nuclear_options = None, None, None
    if "train" not in args.skip:
        trained = train_and_evaluate(args, rows)
        model = trained.pop("_model")
        nucleus_area = trained.pop("_train_nucleus_area")
        nuclear_options = trained.pop("_nuclear_options")
        figures.update({k: (round(v, 4) if isinstance(v, float) else v)
                        for k, v in trained.items()})
    figures.update({k: (round(v, 4) if isinstance(v, float) else v)
                    for k, v in evaluate_real(model, nucleus_area, nuclear_options,
                                              rows).items()})
    figures["total_minutes"] = round((time.perf_counter() - began) / 60, 2)

    width = max(len(name) for name, _ in rows)
    print()
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
