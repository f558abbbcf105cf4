"""A prediction's maps and uncertainty survive the store at uint8 precision."""

from __future__ import annotations

import numpy as np

from backend.services.prediction_maps import get_prediction_maps, maps_key, put_prediction_maps
from backend.storage import open_store


def test_maps_and_uncertainty_round_trip(tmp_path):
    store = open_store(f"file://{tmp_path}")
    rng = np.random.default_rng(0)
    u = rng.random((2, 20, 30)).astype(np.float32)
    maps = {f: {"distance": rng.random((20, 30)) * 4.0, "foreground": rng.random((20, 30))}
            for f in ("whole_cell", "nuclear")}
    key = maps_key(3, 1)
    put_prediction_maps(store, key, u, maps)
    back = get_prediction_maps(store, key)
    assert np.abs(back["uncertainty"] - u).max() <= 0.5 / 255 + 1e-6
    assert np.abs(back["distance"][0] - maps["whole_cell"]["distance"]).max() <= 4.0 / 255
    assert np.abs(back["foreground"][1] - maps["nuclear"]["foreground"]).max() <= 0.5 / 255 + 1e-6


def test_the_baseline_stores_its_uncertainty_only(tmp_path):
    store = open_store(f"file://{tmp_path}")
    put_prediction_maps(store, "maps/1/r0.npz", np.zeros((2, 4, 4), np.float32), None)
    assert set(get_prediction_maps(store, "maps/1/r0.npz")) == {"uncertainty"}
