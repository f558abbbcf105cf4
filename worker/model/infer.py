"""Whole-image inference: normalise, tile with overlap, predict, blend, untile, post-process.

Does not import Keras itself: ``model`` is anything with ``predict_on_batch(x)`` returning a
dict of named outputs (a model from :func:`worker.model.panoptic.build_panoptic`) and an
``output_names`` list.
"""

from __future__ import annotations

import os

import numpy as np

from worker.model.postprocess import postprocess_outputs
from worker.model.transforms import FEATURES, preprocess

#: Rough peak of live activations per input pixel of the ResNet50 PanopticNet during
#: inference (float32 values); used to choose a batch size that fits a memory budget.
ACTIVATION_FLOATS_PER_PIXEL = 512
_MAX_BATCH = 32


def tile_origins(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles along one axis, the last one aligned with the end.

    Parameters
    ----------
    size : int
        Length of the axis (pixels), >= ``tile``.
    tile : int
        Tile length (pixels).
    overlap : int
        Minimum overlap of neighbouring tiles (pixels), 0 <= overlap < tile.

    Returns
    -------
    list of int
        Increasing offsets; the first is 0 and the last is ``size - tile``.
    """
    if size < tile:
        raise ValueError(f"axis of {size} px is shorter than the tile ({tile} px); pad it first")
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap must be in [0, tile), got overlap={overlap}, tile={tile}")
    stride = tile - overlap
    starts = list(range(0, size - tile + 1, stride))
    if starts[-1] != size - tile:
        starts.append(size - tile)
    return starts


def blend_window(tile: int, overlap: int, floor: float = 1e-3) -> np.ndarray:
    """Separable weight window that fades in over ``overlap`` px at every tile edge.

    Parameters
    ----------
    tile : int
        Tile size (pixels).
    overlap : int
        Width (pixels) of the raised-cosine ramp; 0 gives a flat window.
    floor : float
        Smallest weight, so pixels seen by one tile only keep their prediction.

    Returns
    -------
    np.ndarray of float32, shape (tile, tile)
        Weights in [floor, 1].
    """
    position = np.arange(tile, dtype=np.float64)
    if overlap > 0:
        edge = np.minimum(position, tile - 1 - position) + 0.5
        ramp = np.clip(edge / overlap, 0.0, 1.0)
        weights = np.sin(0.5 * np.pi * ramp) ** 2
    else:
        weights = np.ones(tile)
    weights = np.maximum(weights, floor)
    return np.outer(weights, weights).astype(np.float32)


def batch_size_for(tile: int, memory_budget_bytes: int | None = None) -> int:
    """Number of tiles per forward pass that fits the memory budget.

    Parameters
    ----------
    tile : int
        Tile size (pixels).
    memory_budget_bytes : int or None
        Bytes that activations may take; None: a quarter of the physical memory, at most
        4 GiB.

    Returns
    -------
    int
        Between 1 and 32.
    """
    if memory_budget_bytes is None:
        try:
            physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            physical = 8 * 2**30
        memory_budget_bytes = min(physical // 4, 4 * 2**30)
    per_tile = tile * tile * ACTIVATION_FLOATS_PER_PIXEL * 4
    return int(np.clip(memory_budget_bytes // per_tile, 1, _MAX_BATCH))


def _output_names(model) -> list[str]:
    names = list(getattr(model, "output_names", []) or [])
    if not names:
        raise ValueError("the model has no named outputs; build it with build_panoptic")
    return names


def predict_outputs(
    model,
    image: np.ndarray,
    tile: int = 256,
    overlap: int = 32,
    batch_size: int | None = None,
    *,
    normalize: bool = True,
) -> dict[str, np.ndarray]:
    """Blended model outputs for a whole image of any size.

    Parameters
    ----------
    model
        A PanopticNet (``predict_on_batch`` returning a dict of (B, t, t, K) arrays).
    image : np.ndarray, shape (C, H, W)
        Raw intensities, any numeric dtype; C must match the model's input channels.
    tile : int
        Tile size (pixels); a multiple of 128 wastes no work in the network.
    overlap : int
        Overlap of neighbouring tiles (pixels), blended with a raised-cosine window.
    batch_size : int or None
        Tiles per forward pass; None chooses it from a memory budget
        (:func:`batch_size_for`).
    normalize : bool
        Apply :func:`worker.model.transforms.preprocess` to the whole image first (as in
        training); False if ``image`` is already normalised.

    Returns
    -------
    dict of str to np.ndarray of float32
        Every named output of the model, shape (H, W, K).
    """
    image = np.asarray(image)
    if image.ndim != 3:
        raise ValueError(
            f"expected an image of shape (C, H, W), got shape {image.shape}; "
            "a single-channel (H, W) image is image[None]"
        )
    if tile < 1 or not 0 <= overlap < tile:
        raise ValueError(
            f"need tile >= 1 and 0 <= overlap < tile, got tile={tile}, overlap={overlap}"
        )
    channels, height, width = image.shape
    model_channels = _model_channels(model)
    if model_channels is not None and model_channels != channels:
        raise ValueError(
            f"the model takes {model_channels} channel(s) but the image has {channels}; "
            "select the channels the model was trained on"
        )
    x = np.moveaxis(image, 0, -1)[None]
    x = preprocess(x)[0] if normalize else x[0].astype(np.float32)

    padded_h, padded_w = max(height, tile), max(width, tile)
    if (padded_h, padded_w) != (height, width):
        x = np.pad(x, ((0, padded_h - height), (0, padded_w - width), (0, 0)))
    origins = [(y0, x0) for y0 in tile_origins(padded_h, tile, overlap)
               for x0 in tile_origins(padded_w, tile, overlap)]
    if batch_size is None:
        batch_size = batch_size_for(tile)
    batch_size = max(1, min(int(batch_size), len(origins)))
    # equal batches (25 tiles with at most 32 a batch run as one batch of 25, not 32 with 7 blank
    # tiles); only the last may be smaller, and it runs at its own size
    batch_size = -(-len(origins) // -(-len(origins) // batch_size))
    window = blend_window(tile, overlap)[..., None]

    sums: dict[str, np.ndarray] = {}
    weight = np.zeros((padded_h, padded_w, 1), np.float32)
    for start in range(0, len(origins), batch_size):
        chunk = origins[start : start + batch_size]
        batch = np.empty((len(chunk), tile, tile, channels), np.float32)  # no blank tiles
        for i, (y0, x0) in enumerate(chunk):
            batch[i] = x[y0 : y0 + tile, x0 : x0 + tile]
        predicted = model.predict_on_batch(batch)
        if not isinstance(predicted, dict):
            predicted = dict(zip(_output_names(model), predicted))
        for name, values in predicted.items():
            values = np.asarray(values, dtype=np.float32)
            if name not in sums:
                sums[name] = np.zeros((padded_h, padded_w, values.shape[-1]), np.float32)
            for i, (y0, x0) in enumerate(chunk):
                sums[name][y0 : y0 + tile, x0 : x0 + tile] += values[i] * window
        for y0, x0 in chunk:
            weight[y0 : y0 + tile, x0 : x0 + tile] += window
    return {name: (total / weight)[:height, :width] for name, total in sums.items()}


def _model_channels(model) -> int | None:
    shape = getattr(model, "input_shape", None)
    if isinstance(shape, (list, tuple)) and shape and isinstance(shape[-1], int):
        return int(shape[-1])
    return None


def predict_labels(
    model,
    image: np.ndarray,
    tile: int = 256,
    overlap: int = 32,
    batch_size: int | None = None,
    **postprocess_kwargs,
) -> np.ndarray:
    """Segment one image with a PanopticNet.

    Parameters
    ----------
    model
        A PanopticNet from :func:`worker.model.panoptic.build_panoptic` (or loaded from
        ``.keras``).
    image : np.ndarray, shape (C, H, W)
        Raw intensities, any size (smaller than the tile, or not a multiple of it, is fine).
    tile, overlap, batch_size
        See :func:`predict_outputs`.
    **postprocess_kwargs
        Passed to :func:`worker.model.postprocess.postprocess_outputs` (e.g.
        ``maxima_threshold``, ``interior_threshold``).

    Returns
    -------
    np.ndarray of int32, shape (F, H, W)
        Labels per feature in the model's order, (whole_cell, nuclear) by default.
    """
    outputs = predict_outputs(model, image, tile, overlap, batch_size)
    return postprocess_outputs(outputs, features=feature_names(outputs), **postprocess_kwargs)


def feature_names(outputs: dict) -> tuple[str, ...]:
    """The features a model's outputs hold, known features first in their usual order."""
    return tuple(name[: -len("_pixelwise")] for name in _feature_order(outputs))


def _feature_order(outputs: dict) -> list[str]:
    """Pixel-wise output names, known features first in their usual order."""
    pixelwise = [name for name in outputs if name.endswith("_pixelwise")]
    known = [f"{feature}_pixelwise" for feature in FEATURES if f"{feature}_pixelwise" in outputs]
    return known + sorted(set(pixelwise) - set(known))
