"""The generalist: the PanopticNet shipped with LoopLabel, trained on varied synthetic tissue.

Round 0 predicts with it where it beats the classical baseline, and every project's first
fine-tune starts from it instead of random weights. Its weights are committed under
``worker/model/generalist/`` with a card (``generalist.json``: the training script, seed, steps,
scale, calibrated post-processing and the figures measured through the product's predict path),
so the same weights are served everywhere with no download.

Reproduce them with::

    python -m worker.model.generalist train --steps 4000 --seed 0

Input: two channels, (nuclear, membrane); a nuclear-only image gets a blank membrane channel.
Scale: trained with every image resampled so its median nucleus diameter is
:data:`worker.model.scale.REFERENCE_NUCLEUS_DIAMETER` px (± the augmentation's zoom).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from pathlib import Path

import numpy as np

from backend.core.synthetic import synthetic_tissue
from backend.core.tissue_styles import random_style
from worker.model.scale import (
    REFERENCE_NUCLEUS_DIAMETER,
    median_diameter,
    resample_image,
    resample_labels,
)

log = logging.getLogger(__name__)

GENERALIST_DIR = Path(__file__).resolve().parent / "generalist"
WEIGHTS_PATH = GENERALIST_DIR / "generalist.keras"
CARD_PATH = GENERALIST_DIR / "generalist.json"
INPUT_CHANNELS = ("nuclear", "membrane")
#: Cell diameters (px) of the generated tissue before resampling: a 3.3x range.
DIAMETER_RANGE = (12.0, 40.0)


def varied_tissue(seed: int, size: int, at_reference: bool = True,
                  reference: float = REFERENCE_NUCLEUS_DIAMETER) -> tuple[np.ndarray, np.ndarray, dict]:
    """One varied synthetic image at the reference scale, (nuclear, membrane) channels.

    A random morphology family and appearance (:func:`backend.core.tissue_styles.random_style`),
    a random cell diameter in :data:`DIAMETER_RANGE`, density, and 1 to 4 channels (a
    nuclear-only image gets a blank membrane channel); the image is drawn large enough that,
    once resampled to the reference nucleus diameter, a ``size``² window is cut from it.

    ``at_reference=False`` keeps the drawn scale instead (a ``size``² image as a lab would
    upload it: the test of the predict path's scale handling).

    Returns
    -------
    image : np.ndarray of float32, shape (size, size, 2)
        Raw counts, channels last.
    labels : np.ndarray of int32, shape (size, size, 2)
        (whole_cell, nuclear).
    meta : dict
        family, diameter, channels, factor.
    """
    rng = np.random.default_rng(seed)
    family, style = random_style(rng)
    diameter = float(np.exp(rng.uniform(*np.log(DIAMETER_RANGE))))
    density = float(rng.uniform(0.55, 1.0))
    n_channels = int(rng.choice([1, 2, 2, 3, 4]))
    probe = synthetic_tissue(192, 192, n_channels=1, seed=seed, mean_diameter=diameter,
                             density=density, style=style)
    nucleus = median_diameter(probe.nuclear) or 0.45 * diameter
    factor = reference / nucleus if at_reference else 1.0
    native = int(math.ceil(size / factor)) + 2
    tissue = synthetic_tissue(native, native, n_channels=n_channels, seed=seed,
                              mean_diameter=diameter, density=density, style=style)
    nucleus = median_diameter(tissue.nuclear) or nucleus
    factor = reference / nucleus if at_reference else 1.0
    image = tissue.image[:2].astype(np.float32)
    whole_cell = tissue.whole_cell
    if n_channels == 1:  # nuclear-only: a blank membrane channel, and the visible cell is the nucleus
        image = np.concatenate([image, np.zeros_like(image)])
        whole_cell = tissue.nuclear
    out_side = max(size, int(round(native * factor)))
    image = resample_image(image, out_side / native)
    labels = resample_labels(np.stack([whole_cell, tissue.nuclear]), image.shape[1:])
    y0 = int(rng.integers(0, image.shape[1] - size + 1))
    x0 = int(rng.integers(0, image.shape[2] - size + 1))
    window = (slice(None), slice(y0, y0 + size), slice(x0, x0 + size))
    from skimage.measure import label as connected

    labels = labels[window]
    whole = connected(labels[0], background=0, connectivity=1).astype(np.int32)
    nuclear = np.where(labels[1] > 0, whole, 0).astype(np.int32)
    meta = {"family": family, "diameter": round(diameter, 1), "channels": n_channels,
            "factor": round(factor, 3)}
    return (np.moveaxis(image[window], 0, -1).astype(np.float32),
            np.stack([whole, nuclear], -1), meta)


def varied_set(n_images: int, size: int, first_seed: int, at_reference: bool = True,
               reference: float = REFERENCE_NUCLEUS_DIAMETER) -> tuple[np.ndarray, np.ndarray, list]:
    """``n_images`` of :func:`varied_tissue`, seeds ``first_seed`` …, stacked (N, size, size, 2)."""
    pairs = [varied_tissue(first_seed + i, size, at_reference, reference) for i in range(n_images)]
    return (np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs]),
            [p[2] for p in pairs])


def load_card() -> dict | None:
    """The generalist's card (provenance, scale, post-processing, figures), or None if absent."""
    if not CARD_PATH.exists():
        return None
    return json.loads(CARD_PATH.read_text())


def available() -> bool:
    return WEIGHTS_PATH.exists() and CARD_PATH.exists()


def train(args) -> None:
    """Train the generalist and write its weights and card."""
    import keras

    from worker.model.train import train_model

    started = time.perf_counter()
    X, y, meta = varied_set(args.images, args.size, args.seed * 100_000, reference=args.reference)
    X_val, y_val, _ = varied_set(args.val_images, args.size, args.seed * 100_000 + 50_000,
                                 reference=args.reference)
    log.info("generated %d + %d images in %.0f s", len(X), len(X_val), time.perf_counter() - started)

    def report(epoch, n_epochs, logs):
        print(f"epoch {epoch}/{n_epochs}: loss {logs.get('loss', math.nan):.4f} val_loss "
              f"{logs.get('val_loss', math.nan):.4f} ({time.perf_counter() - started:.0f} s)",
              flush=True)
        if args.checkpoint:
            model_ref[0].save(args.checkpoint) if model_ref else None

    model_ref: list = []
    keras.utils.set_random_seed(args.seed)
    from worker.model.panoptic import build_panoptic

    if args.init:  # a further phase: continue from earlier weights (e.g. at a new scale or step)
        from worker.predict import load_model_file

        model = load_model_file(args.init)
    else:
        model = build_panoptic(len(INPUT_CHANNELS), "small")
    model_ref.append(model)
    model, history = train_model(
        model, X, y, X_val, y_val, n_channels=len(INPUT_CHANNELS), backbone="small",
        steps=args.steps, batch_size=args.batch_size, lr=args.lr, on_epoch=report, seed=args.seed,
        steps_per_epoch=args.steps_per_epoch, crop_size=args.crop, scale_range=(0.7, 1.45),
        intensity_jitter=True, freeze_batch_norm=False,  # a further phase trains on the full data
    )
    GENERALIST_DIR.mkdir(parents=True, exist_ok=True)
    out = Path(args.out or WEIGHTS_PATH)
    model.save(out)
    families: dict[str, int] = {}
    for m in meta:
        families[m["family"]] = families.get(m["family"], 0) + 1
    phases = []
    init_card = Path(args.init).with_suffix(".json") if args.init else None
    if init_card is not None and init_card.exists():
        earlier = json.loads(init_card.read_text()).get("provenance", {})
        phases = earlier.pop("phases", []) + [earlier]
    card = {
        "name": "generalist",
        "input_channels": list(INPUT_CHANNELS),
        "backbone": "small",
        "scale": {"nucleus_diameter": args.reference, "mpp": None},
        "postprocess": {},
        "provenance": {
            "script": "python -m worker.model.generalist train",
            "seed": args.seed, "steps": history["steps"], "batch_size": args.batch_size,
            "init": args.init or None, "reference_nucleus_diameter": args.reference,
            "lr": args.lr, "crop": args.crop, "train_images": args.images,
            "val_images": args.val_images, "image_size": args.size,
            "cell_diameter_range_px": list(DIAMETER_RANGE), "families": families,
            "augmentation": "zoom 0.7-1.45, flips, 90° rotations, gamma 0.6-1.6, gain "
                            "0.75-1.25; 20 % nuclear-only images (blank membrane, cell = nucleus)",
            "best_epoch": history["best_epoch"], "best_val_loss": history["best_val_loss"],
            "train_minutes": round(history["seconds"] / 60, 1),
            "keras_backend": history["backend"], "gpu": history["gpu"],
            "phases": phases,
        },
        "figures": {},
    }
    CARD_PATH.write_text(json.dumps(card, indent=2) + "\n")
    print(json.dumps({"weights": str(out), "minutes": round((time.perf_counter() - started) / 60, 1),
                      "best_val_loss": history["best_val_loss"]}))


def calibrate(args) -> None:
    """Choose the generalist's zoom and post-processing on its validation images; write the card."""
    from worker.model.calibrate import calibrate_scale
    from worker.predict import load_model_file

    card = load_card()
    if card is None or not WEIGHTS_PATH.exists():
        raise SystemExit(f"no generalist to calibrate: train it first ({WEIGHTS_PATH})")
    model = load_model_file(WEIGHTS_PATH)
    seed = card["provenance"]["seed"]
    trained = card["scale"].get("trained_nucleus_diameter") or card["scale"]["nucleus_diameter"]
    X_val, y_val, _ = varied_set(args.val_images, card["provenance"]["image_size"], seed * 100_000 + 50_000,
                                 reference=trained)
    result = calibrate_scale(model, X_val, y_val, ("whole_cell", "nuclear"), time_budget_s=args.budget)
    card["postprocess"] = {"feature_kwargs": result["feature_kwargs"]}
    card["scale"] = {"nucleus_diameter": round(trained * result["zoom"], 3), "mpp": None,
                     "trained_nucleus_diameter": trained, "zoom": result["zoom"]}
    card["provenance"]["calibration"] = {"script": "python -m worker.model.generalist calibrate",
                                         "val_images": args.val_images,
                                         "objective": result["objective"],
                                         "validation_score_default_vs_chosen": result["validation_score"],
                                         "mean_score_by_zoom": result["by_zoom"]}
    CARD_PATH.write_text(json.dumps(card, indent=2) + "\n")
    print(json.dumps(result))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m worker.model.generalist",
                                     description="train the shipped generalist PanopticNet")
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train on varied synthetic tissue; writes weights + card")
    t.add_argument("--images", type=int, default=320)
    t.add_argument("--val-images", type=int, default=24)
    t.add_argument("--size", type=int, default=256)
    t.add_argument("--crop", type=int, default=128)
    t.add_argument("--steps", type=int, default=4000)
    t.add_argument("--steps-per-epoch", type=int, default=200)
    t.add_argument("--batch-size", type=int, default=8)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", default="")
    t.add_argument("--checkpoint", default="", help="also save the model after every epoch")
    t.add_argument("--init", default="", help="continue from these weights (.keras) instead of random")
    t.add_argument("--reference", type=float, default=REFERENCE_NUCLEUS_DIAMETER,
                   help="median nucleus diameter (px) the images are brought to")
    c = sub.add_parser("calibrate", help="choose the post-processing on validation images")
    c.add_argument("--val-images", type=int, default=24)
    c.add_argument("--budget", type=float, default=600.0, help="seconds")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    {"train": train, "calibrate": calibrate}[args.command](args)


if __name__ == "__main__":
    main()
