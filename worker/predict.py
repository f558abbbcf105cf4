"""The one predict path: every figure and every round's labels come from :func:`predict_image`.

A :class:`Predictor` is the classical baseline, the shipped generalist, or a stored model
version, each with its own post-processing parameters (calibrated on validation images and
stored with it) and the scale it works at. :func:`predict_image` selects the model's input
channels, brings the image to the model's scale (from the pixel size when known, else from the
estimated nucleus diameter), predicts, post-processes and resamples the labels back. The round's
predict job, training's evaluation and promotion rule, ``looplabel evaluate``, the simulation and
the benches all call it.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy.orm import Session

from backend.models import ModelVersion
from backend.storage import BlobStore
from worker.model.scale import (
    estimate_nucleus_diameter,
    resample_image,
    resample_labels,
    scale_factor,
)

log = logging.getLogger(__name__)
_cache: dict[str, object] = {}
_cache_lock = threading.Lock()


@dataclass
class Predictor:
    """Something that segments images, with how it post-processes and at which scale.

    Attributes
    ----------
    name : str
        ``"baseline"``, ``"generalist"`` or ``"model vN"``.
    model : keras.Model or None
        None for the classical baseline.
    postprocess : dict
        Options of :func:`worker.model.postprocess.postprocess_outputs`, usually
        ``{"feature_kwargs": {feature: {...}}}``.
    scale : dict
        ``nucleus_diameter`` (px) and ``mpp`` (µm/px or None) the model works at; empty: the
        image is used as it is.
    model_version_id : int or None
    """

    name: str
    model: object | None = None
    postprocess: dict = field(default_factory=dict)
    scale: dict = field(default_factory=dict)
    model_version_id: int | None = None

    @property
    def is_baseline(self) -> bool:
        return self.model is None


BASELINE = Predictor("baseline")


def model_input(raw: np.ndarray, n_inputs: int, nuclear_channel: int = 0,
                membrane_channel: int | None = 1) -> np.ndarray:
    """The channels a model takes, from a raw (C, H, W) image.

    Two-input models take (nuclear, membrane); a missing membrane channel is blank. Models
    with another number of inputs (versions trained before the generalist) take the image's
    first ``n_inputs`` channels.

    Returns
    -------
    np.ndarray of float32, shape (n_inputs, H, W)
    """
    raw = np.asarray(raw)
    if raw.ndim != 3:
        raise ValueError(f"expected an image of shape (C, H, W), got shape {raw.shape}")
    if not 0 <= nuclear_channel < raw.shape[0]:
        raise ValueError(f"nuclear channel {nuclear_channel} is out of range for an image with "
                         f"{raw.shape[0]} channel(s)")
    if n_inputs == 2:
        nuclear = raw[nuclear_channel].astype(np.float32)
        if membrane_channel is not None and 0 <= membrane_channel < raw.shape[0] \
                and membrane_channel != nuclear_channel:
            membrane = raw[membrane_channel].astype(np.float32)
        else:
            membrane = np.zeros_like(nuclear)
        return np.stack([nuclear, membrane])
    if raw.shape[0] < n_inputs:
        raise ValueError(f"the model takes {n_inputs} channels but the image has {raw.shape[0]}")
    return raw[:n_inputs].astype(np.float32)


def image_scale_factor(predictor: Predictor, raw: np.ndarray, mpp: float | None = None,
                       nuclear_channel: int = 0) -> float:
    """Zoom that brings ``raw`` to the predictor's scale (1 for the baseline)."""
    if predictor.is_baseline or not predictor.scale:
        return 1.0
    diameter = None
    if not (mpp and predictor.scale.get("mpp")):
        diameter = estimate_nucleus_diameter(np.asarray(raw)[nuclear_channel])
    return scale_factor(predictor.scale, image_mpp=mpp, nucleus_diameter=diameter)


@dataclass
class Prediction:
    """What one prediction of one image gives, at the image's own size.

    Attributes
    ----------
    labels : np.ndarray of int32, shape (2, H, W)
        (whole_cell, nuclear) labels: what :func:`predict_image` returns.
    maps : dict or None
        A model's maps per feature: ``{feature: {"distance": (H, W), "foreground": (H, W)}}``
        (float32; foreground is 1 - the background probability); None for the baseline or when
        not asked for.
    uncertainty : np.ndarray of float32, shape (2, H, W), or None
        :func:`worker.uncertainty.cell_uncertainty` per feature, when asked for.
    """

    labels: np.ndarray
    maps: dict | None = None
    uncertainty: np.ndarray | None = None


FLIPS = ((1,), (0,), (0, 1))
"""Test-time augmentations of a model's input, as the (H, W) axes each one flips."""


def _baseline_perturbations(raw: np.ndarray) -> list[np.ndarray]:
    """The image slightly blurred, and with its contrast changed (gamma 0.7): a second and a
    third classical segmentation to compare the baseline's with."""
    from scipy.ndimage import gaussian_filter

    raw = raw.astype(np.float32)
    blurred = np.stack([gaussian_filter(c, 1.0) for c in raw])
    low, high = raw.min(axis=(1, 2), keepdims=True), raw.max(axis=(1, 2), keepdims=True)
    gamma = ((raw - low) / np.maximum(high - low, 1e-6)) ** 0.7
    return [blurred, gamma]


def predict_image(
    predictor: Predictor,
    raw: np.ndarray,
    *,
    mpp: float | None = None,
    nuclear_channel: int = 0,
    membrane_channel: int | None = 1,
    factor: float | None = None,
) -> np.ndarray:
    """Whole-cell and nuclear labels of one image: the product's only predict path.

    Parameters
    ----------
    predictor : Predictor
    raw : np.ndarray, shape (C, H, W)
        Raw intensities, any numeric dtype.
    mpp : float or None
        The image's pixel size (µm/px) when known.
    nuclear_channel, membrane_channel : int
        Which channels hold the nuclear and membrane stains (None: no membrane stain).
    factor : float or None
        Zoom to the model's scale, when the caller knows it (training data at a known scale);
        None: :func:`image_scale_factor`.

    Returns
    -------
    np.ndarray of int32, shape (2, H, W)
        (whole_cell, nuclear) labels.
    """
    return predict_image_result(predictor, raw, mpp=mpp, nuclear_channel=nuclear_channel,
                                membrane_channel=membrane_channel, factor=factor).labels


def predict_image_result(
    predictor: Predictor,
    raw: np.ndarray,
    *,
    mpp: float | None = None,
    nuclear_channel: int = 0,
    membrane_channel: int | None = 1,
    factor: float | None = None,
    maps: bool = False,
    uncertainty: bool = False,
) -> Prediction:
    """:func:`predict_image`, optionally with the model's maps and the per-cell uncertainty.

    The labels are the same as :func:`predict_image`'s. ``uncertainty`` predicts the image again
    under each of :data:`FLIPS` (a model) or segments two perturbed copies (the baseline) and
    measures how well each cell is reproduced (:func:`worker.uncertainty.cell_uncertainty`).
    """
    raw = np.asarray(raw)
    if raw.ndim != 3:
        raise ValueError(f"expected an image of shape (C, H, W), got shape {raw.shape}")
    if not np.isfinite(raw).all():
        raise ValueError("the image holds NaN or infinite values")
    from worker.uncertainty import cell_uncertainty

    if predictor.is_baseline:
        from worker.model.baseline import segment_baseline

        membrane = membrane_channel if membrane_channel is not None and \
            membrane_channel < raw.shape[0] and membrane_channel != nuclear_channel else None

        def segment(image):
            return segment_baseline(image, nuclear_channel=nuclear_channel,
                                    membrane_channel=membrane).astype(np.int32)

        labels = segment(raw)
        u = None
        if uncertainty:
            others = [segment(p) for p in _baseline_perturbations(raw)]
            u = np.stack([cell_uncertainty(labels[f], [o[f] for o in others]) for f in range(2)])
        return Prediction(labels, None, u)

    from worker.model.infer import feature_names, predict_outputs

    n_inputs = int(predictor.model.input_shape[-1])
    x = model_input(raw, n_inputs, nuclear_channel, membrane_channel)
    if factor is None:
        factor = image_scale_factor(predictor, raw, mpp, nuclear_channel)
    x = resample_image(x, factor)
    outputs = predict_outputs(predictor.model, x)
    features = feature_names(outputs)

    def labels_of(out):
        return labels_from_outputs(predictor, out, features)

    labels = labels_of(outputs)
    u = None
    if uncertainty:
        others = []
        for axes in FLIPS:
            flipped = predict_outputs(predictor.model, np.flip(x, axis=tuple(a + 1 for a in axes)))
            others.append(labels_of({k: np.flip(v, axis=axes) for k, v in flipped.items()}))
        u = np.stack([cell_uncertainty(labels[f], [o[f] for o in others]) for f in range(2)])
    model_maps = None
    if maps:
        model_maps = {}
        for feature in features:
            if feature in ("whole_cell", "nuclear"):
                distance = outputs[f"{feature}_distance"][..., 0]
                foreground = 1.0 - outputs[f"{feature}_pixelwise"][..., 0]
                model_maps[feature] = {"distance": distance, "foreground": foreground}
    if factor != 1.0:
        shape = raw.shape[1:]
        labels = labels_to_image(labels, shape)
        if u is not None:
            u = np.stack([_resample_map(m, shape) for m in u])
        if model_maps:
            model_maps = {f: {k: _resample_map(v, shape) for k, v in m.items()} for f, m in model_maps.items()}
    return Prediction(labels.astype(np.int32, copy=False), model_maps,
                      None if u is None else u.astype(np.float32, copy=False))


def labels_from_outputs(predictor: Predictor, outputs: dict, features: tuple[str, ...]) -> np.ndarray:
    """(whole_cell, nuclear) labels, at the model's scale, of a model's outputs, post-processed
    with the predictor's parameters (a nuclear-only model's whole-cell labels are blank)."""
    from worker.model.postprocess import postprocess_outputs

    labels = postprocess_outputs(outputs, features=features, **predictor.postprocess)
    if labels.shape[0] == 1:  # a one-feature model: nuclear only
        labels = np.concatenate([np.zeros_like(labels), labels])
    return labels[:2]


def labels_to_image(labels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(F, h, w) labels at the model's scale brought back to the image's (H, W) (nearest) and
    numbered 1..n again (an object too small to survive the resampling leaves no gap)."""
    from worker.model.postprocess import remove_small_and_relabel

    labels = resample_labels(labels, shape)
    return np.stack([remove_small_and_relabel(f, 1) for f in labels])


def _resample_map(values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A float map brought to ``shape`` (bilinear)."""
    from skimage.transform import resize

    return resize(values.astype(np.float32), shape, order=1, preserve_range=True,
                  anti_aliasing=False).astype(np.float32)


# --- loading ------------------------------------------------------------------------------------
def load_model_file(path: str | Path):
    """A ``.keras`` PanopticNet from a file (a fresh object)."""
    import keras

    import worker.model.panoptic  # noqa: F401  (registers the custom layers)

    return keras.saving.load_model(Path(path), compile=False)


def load_model_copy(store: BlobStore, key: str):
    """A fresh, uncached copy of a stored ``.keras`` model (for fine-tuning: never the served one)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.keras"
        path.write_bytes(store.get_bytes(key))
        return load_model_file(path)


def load_model(store: BlobStore, key: str):
    """Load a ``.keras`` model from the store, once per process (the gpu worker keeps TF loaded).

    The cached object is for prediction only; training must use :func:`load_model_copy`.
    """
    with _cache_lock:
        if key in _cache:
            return _cache[key]
        model = load_model_copy(store, key)
        for old in [k for k in _cache if not k.startswith("file:")]:
            del _cache[old]  # one stored version at a time: versions change per round
        _cache[key] = model
        return model


def generalist_predictor(fresh: bool = False) -> Predictor:
    """The shipped generalist with its card's post-processing and scale.

    Raises
    ------
    FileNotFoundError
        When the weights are not installed.
    """
    from worker.model import generalist

    if not generalist.available():
        raise FileNotFoundError(f"the generalist's weights are missing ({generalist.WEIGHTS_PATH})")
    card = generalist.load_card()
    key = f"file:{generalist.WEIGHTS_PATH}"
    with _cache_lock:
        if fresh:
            model = load_model_file(generalist.WEIGHTS_PATH)
        else:
            model = _cache.get(key) or load_model_file(generalist.WEIGHTS_PATH)
            _cache[key] = model
    return Predictor("generalist", model, dict(card.get("postprocess") or {}),
                     dict(card.get("scale") or {}))


def version_predictor(version: ModelVersion, store: BlobStore, fresh: bool = False) -> Predictor:
    """A stored model version with its calibrated post-processing and scale."""
    if not version.key:
        raise ValueError(f"model version {version.version} has no stored weights")
    model = load_model_copy(store, version.key) if fresh else load_model(store, version.key)
    return Predictor(f"model v{version.version}", model, dict(version.postprocess or {}),
                     dict(version.scale or {}), version.id)


def file_predictor(path: str | Path, card: dict | None = None) -> Predictor:
    """A ``.keras`` file, with the post-processing and scale of ``card`` (if any)."""
    card = card or {}
    return Predictor(Path(path).name, load_model_file(path), dict(card.get("postprocess") or {}),
                     dict(card.get("scale") or {}))


def predictor_for_round(session: Session, store: BlobStore, project, model_version_id: int | None
                        ) -> Predictor:
    """What predicts a round: its model version, else the project's round-0 choice."""
    if model_version_id is not None:
        version = session.get(ModelVersion, model_version_id)
        if version is not None and version.key:
            return version_predictor(version, store)
    from worker.round_zero import round_zero_predictor

    return round_zero_predictor(session, store, project)
