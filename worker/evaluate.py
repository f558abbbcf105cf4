"""Evaluate a predictor on labelled images: ``looplabel evaluate`` and the benches.

Reads a TissueNet-layout NPZ (``X`` (N,H,W,C) or (H,W,C); ``y`` (N,H,W,2) whole-cell + nuclear,
or (N,H,W) / (N,H,W,1) nuclear only), validates it, and measures any predictor through the
product's predict path (:func:`worker.predict.predict_image`). :func:`evaluate_labelled_image`
does the same for one stored image with its uploaded ground truth (the console's evaluate job).
"""

from __future__ import annotations

import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from backend.core.metrics import aggregate, object_metrics
from backend.errors import UserError

ERROR_TYPES = ("correct", "missed", "gained", "split", "merge", "catastrophe")


@dataclass
class LabelledSet:
    """Images with ground truth, channels selected: X (N,H,W,C) float32, y (N,H,W,2) int32
    (whole-cell plane all zero when ``nuclear_only``)."""

    X: np.ndarray
    y: np.ndarray
    nuclear_only: bool
    nuclear_channel: int = 0
    membrane_channel: int | None = 1


def load_labelled_npz(path: str | Path, channels: str | None = None) -> LabelledSet:
    """Read and check a labelled NPZ.

    Parameters
    ----------
    path : str or Path
    channels : str or None
        ``"N,M"``: the nuclear and membrane channel indices (``"N"``: nuclear only); default
        ``0,1`` (``0`` for one-channel images).

    Raises
    ------
    UserError
        Unreadable file, no ``X`` or ``y``, shapes that do not match, non-finite images,
        non-integer or negative labels, channel indices out of range.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            names = set(data.files)
            if "X" not in names:
                raise UserError(f"{path.name}: no 'X' array (images, (N,H,W,C)); found {sorted(names)}")
            if "y" not in names:
                raise UserError(f"{path.name}: no 'y' array (ground truth, (N,H,W,2) or (N,H,W)); "
                                f"found {sorted(names)}")
            X, y = data["X"], data["y"]
    except UserError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise UserError(f"{path.name}: not a readable .npz file ({exc})") from None
    if X.ndim == 3:
        if y.ndim == 3 and y.shape[:2] == X.shape[:2]:
            y = y[None]  # one image: y (H,W,F), as the TissueNet-style export of one image
        X = X[None]
    if X.ndim != 4:
        raise UserError(f"{path.name}: X must have shape (N,H,W,C), got {X.shape}")
    if y.ndim == 2:
        y = y[None]
    if y.ndim == 3:
        y = y[..., None]
    if y.ndim != 4 or y.shape[:3] != X.shape[:3] or y.shape[-1] not in (1, 2):
        raise UserError(f"{path.name}: y must have shape (N,H,W,2) or (N,H,W) matching X {X.shape[:3]}, "
                        f"got {y.shape}")
    if X.shape[0] == 0:
        raise UserError(f"{path.name}: holds no images")
    if X.dtype.kind not in "iuf" or not np.isfinite(X).all():
        raise UserError(f"{path.name}: X must hold finite numbers (found NaN, inf or dtype {X.dtype})")
    if y.dtype.kind not in "iu":
        if y.dtype.kind == "f" and np.isfinite(y).all() and (y == np.round(y)).all():
            y = y.astype(np.int64)
        else:
            raise UserError(f"{path.name}: y must hold integer label ids, got dtype {y.dtype}")
    if y.min() < 0:
        raise UserError(f"{path.name}: y holds negative label ids")
    nuclear_only = y.shape[-1] == 1
    if nuclear_only:
        y = np.concatenate([np.zeros_like(y), y], axis=-1)
    n_channels = X.shape[-1]
    nuclear, membrane = 0, (1 if n_channels > 1 else None)
    if channels:
        try:
            picked = [int(c) for c in channels.split(",")]
        except ValueError:
            raise UserError(f"--channels must be 'N,M' or 'N' (channel indices), got {channels!r}") from None
        if not 1 <= len(picked) <= 2 or any(not 0 <= c < n_channels for c in picked):
            raise UserError(f"--channels {channels!r}: the images have {n_channels} channel(s) (0..{n_channels - 1})")
        nuclear, membrane = picked[0], (picked[1] if len(picked) == 2 else None)
    return LabelledSet(X.astype(np.float32), y.astype(np.int32), nuclear_only, nuclear, membrane)


def evaluate_predictor(predictor, data: LabelledSet, mpp: float | None = None) -> dict:
    """Pooled object metrics of a predictor on a labelled set, through the predict path.

    Returns
    -------
    dict
        ``f1`` (whole-cell; None for nuclear-only data), ``nuclear_f1``, ``precision``,
        ``recall`` and ``errors`` (counts per error type) of the headline feature, the same
        per feature under ``whole_cell`` / ``nuclear``, ``n_images``, ``seconds``.
    """
    from worker.predict import predict_image

    started = time.perf_counter()
    per = {"whole_cell": [], "nuclear": []}
    for x, truth in zip(data.X, data.y):
        labels = predict_image(predictor, np.moveaxis(x, -1, 0), mpp=mpp,
                               nuclear_channel=data.nuclear_channel,
                               membrane_channel=data.membrane_channel)
        for f, name in enumerate(per):
            if not (name == "whole_cell" and data.nuclear_only):
                per[name].append(object_metrics(truth[..., f], labels[f]))
    out = metrics_summary(predictor.name, per)
    out["n_images"] = int(data.X.shape[0])
    out["seconds"] = round(time.perf_counter() - started, 2)
    return out


def metrics_summary(model_name: str, per: dict[str, list]) -> dict:
    """Pool per-image object metrics into the figures :func:`evaluate_predictor` reports.

    Parameters
    ----------
    model_name : str
    per : dict
        ``whole_cell`` / ``nuclear`` → list of :func:`backend.core.metrics.object_metrics`
        results; an empty list means the feature has no ground truth.

    Returns
    -------
    dict
        ``model``; ``whole_cell`` / ``nuclear`` (f1, precision, recall, n_true, n_pred, errors)
        for the features that were scored; ``f1`` / ``nuclear_f1`` (None when not scored);
        ``precision``, ``recall`` and ``errors`` of the headline feature (whole-cell, else nuclear).
    """
    out: dict = {"model": model_name}
    for name, results in per.items():
        if results:
            m = aggregate(results)
            out[name] = {"f1": round(m.f1, 4), "precision": round(m.precision, 4),
                         "recall": round(m.recall, 4), "n_true": m.n_true, "n_pred": m.n_pred,
                         "errors": {k: int(getattr(m, k)) for k in ERROR_TYPES}}
    if "whole_cell" not in out and "nuclear" not in out:
        raise UserError("the ground truth holds no labelled cells: nothing to score")
    out["f1"] = out["whole_cell"]["f1"] if "whole_cell" in out else None
    out["nuclear_f1"] = out["nuclear"]["f1"] if "nuclear" in out else None
    head = out["whole_cell"] if "whole_cell" in out else out["nuclear"]
    out.update(precision=head["precision"], recall=head["recall"], errors=head["errors"])
    return out


def evaluate_labelled_image(predictor, raw: np.ndarray, truth: np.ndarray, mpp: float | None = None) -> dict:
    """Object metrics of a predictor on one stored image with ground truth, through the predict path.

    Parameters
    ----------
    predictor : worker.predict.Predictor
    raw : np.ndarray
        (C,H,W) the image as stored (any numeric dtype), channels as the round's predict job
        reads them (nuclear 0, membrane 1).
    truth : np.ndarray
        (2,H,W) integer labels, whole-cell then nuclear; a plane with no cell is not scored
        (an upload with one label channel stores it as whole-cell and leaves nuclear empty).
    mpp : float or None
        µm per pixel (the image's, else the project's); None: the scale is estimated.

    Returns
    -------
    dict
        As :func:`metrics_summary`, plus ``n_images`` (1) and ``seconds`` (wall time).

    Raises
    ------
    UserError
        ``truth`` is not (2,H,W) matching ``raw``, or holds no cell at all.
    """
    from worker.predict import predict_image

    truth = np.asarray(truth)
    if truth.ndim != 3 or truth.shape[0] != 2 or truth.shape[1:] != raw.shape[1:]:
        raise UserError(f"ground truth of shape {truth.shape} does not match the image {raw.shape[1:]}")
    started = time.perf_counter()
    labels = predict_image(predictor, raw, mpp=mpp)
    per = {name: ([object_metrics(truth[f], labels[f])] if truth[f].any() else [])
           for f, name in enumerate(("whole_cell", "nuclear"))}
    out = metrics_summary(predictor.name, per)
    out["n_images"] = 1
    out["seconds"] = round(time.perf_counter() - started, 2)
    return out


def resolve_predictor(spec: str, session=None, store=None):
    """``baseline``, ``generalist``, a model version id (needs a session and store) or a
    ``.keras`` file (its post-processing and scale from a ``.json`` card beside it, if any)."""
    import json

    from worker.predict import BASELINE, file_predictor, generalist_predictor, version_predictor

    if spec == "baseline":
        return BASELINE
    if spec == "generalist":
        try:
            return generalist_predictor()
        except FileNotFoundError as exc:
            raise UserError(str(exc)) from None
    if spec.isascii() and spec.isdigit():
        from backend.models import ModelVersion

        if session is None:
            raise UserError("a model version id needs the project database (DATABASE_URL)")
        version = session.get(ModelVersion, int(spec))
        if version is None or not version.key:
            raise UserError(f"no stored model version with id {spec}")
        return version_predictor(version, store)
    path = Path(spec)
    if path.suffix == ".keras":
        if not path.is_file():
            raise UserError(f"no model file {spec}")
        card_path = path.with_suffix(".json")
        card = json.loads(card_path.read_text()) if card_path.is_file() else None
        try:
            return file_predictor(path, card)
        except Exception as exc:  # keras raises many kinds for a bad file
            raise UserError(f"{path.name}: not a loadable .keras model ({exc})") from None
    raise UserError(f"--model must be baseline, generalist, a model version id or a .keras file; got {spec!r}")
