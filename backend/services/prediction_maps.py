"""What a round's prediction leaves besides its labels: the model's maps and the uncertainty.

Stored per image and round under :func:`maps_key` as one compressed archive of uint8 arrays
(2, H, W), features (whole_cell, nuclear):

* ``uncertainty`` — :func:`worker.uncertainty.cell_uncertainty` × 255 (every predictor);
* ``distance`` / ``foreground`` — a model's inner-distance map (× 255 / ``distance_scale``, per
  feature) and foreground probability (× 255); absent for the classical baseline.

uint8 keeps a 2048² image's maps to a few MB; the tools that use them (the crop scores, the
"add a cell here" tool, the review overlay) need no finer steps.
"""

from __future__ import annotations

import numpy as np

from backend.storage import BlobStore

FEATURES = ("whole_cell", "nuclear")
UNSURE = 0.3
"""A cell counts as uncertain when perturbed predictions reproduce it at a mean IoU under 0.7."""


def maps_key(image_id: int, round_number: int) -> str:
    return f"maps/{image_id}/r{round_number}.npz"


def _to_uint8(values: np.ndarray, scale: float = 1.0) -> np.ndarray:
    return np.clip(np.rint(np.asarray(values, np.float32) * (255.0 / scale)), 0, 255).astype(np.uint8)


def put_prediction_maps(store: BlobStore, key: str, uncertainty: np.ndarray | None,
                        maps: dict | None) -> None:
    """Store a prediction's uncertainty (2, H, W) in 0..1 and a model's maps (see module doc)."""
    arrays: dict[str, np.ndarray] = {}
    if uncertainty is not None:
        arrays["uncertainty"] = _to_uint8(uncertainty)
    if maps and all(f in maps for f in FEATURES):
        scales = np.array([max(float(np.max(maps[f]["distance"], initial=0.0)), 1e-6) for f in FEATURES],
                          np.float32)
        arrays["distance"] = np.stack([_to_uint8(maps[f]["distance"], s) for f, s in zip(FEATURES, scales)])
        arrays["foreground"] = np.stack([_to_uint8(maps[f]["foreground"]) for f in FEATURES])
        arrays["distance_scale"] = scales
    if arrays:
        store.put_arrays(key, **arrays)


def get_prediction_maps(store: BlobStore, key: str) -> dict[str, np.ndarray]:
    """The stored arrays as float32 in their own units (``uncertainty`` and ``foreground`` 0..1,
    ``distance`` in the model's units); missing entries are absent from the dict."""
    raw = store.get_arrays(key)
    out: dict[str, np.ndarray] = {}
    if "uncertainty" in raw:
        out["uncertainty"] = raw["uncertainty"].astype(np.float32) / 255.0
    if "foreground" in raw:
        out["foreground"] = raw["foreground"].astype(np.float32) / 255.0
    if "distance" in raw:
        scales = np.asarray(raw["distance_scale"], np.float32).reshape(-1, 1, 1)
        out["distance"] = raw["distance"].astype(np.float32) / 255.0 * scales
    return out


def unsure_mask(store: BlobStore, image_id: int, round_number: int) -> np.ndarray:
    """(2, H, W) uint8: 1 where the round's prediction was unsure (:data:`UNSURE`), per feature.

    Raises NotFoundError when that prediction stored no uncertainty (made before it existed)."""
    from backend.errors import NotFoundError

    key = maps_key(image_id, round_number)
    u = get_prediction_maps(store, key).get("uncertainty") if store.exists(key) else None
    if u is None:
        raise NotFoundError(f"round {round_number}'s prediction of this image has no uncertainty map "
                            "(it was predicted before uncertainty was measured)")
    return (u >= UNSURE).astype(np.uint8)

