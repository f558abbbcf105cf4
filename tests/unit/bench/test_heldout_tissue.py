"""bench/heldout_tissue.py: exact ground truth for every kind, determinism, the CLI's NPZ."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage

from bench.heldout_tissue import KINDS, heldout_tissue, main

CROSS = ndimage.generate_binary_structure(2, 1)


def assert_exact_ground_truth(labels: np.ndarray) -> None:
    cells, nuclei = labels
    n = int(cells.max())
    assert n > 0
    assert set(np.unique(cells[cells > 0])) == set(range(1, n + 1)), "ids not 1..n"
    for cid, box in enumerate(ndimage.find_objects(cells), 1):
        assert ndimage.label(cells[box] == cid, CROSS)[1] == 1, f"cell {cid} not one 4-connected object"
    inside = nuclei > 0
    assert inside.any()
    assert np.array_equal(cells[inside], nuclei[inside]), "nucleus id differs from its cell's"
    padded = np.pad(cells, 1, constant_values=-1)
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        neighbour = padded[1 + dy: 1 + dy + cells.shape[0], 1 + dx: 1 + dx + cells.shape[1]]
        ok = (neighbour == nuclei) | (neighbour == -1)
        assert ok[inside].all(), "nucleus touches its cell's border"
    for nid, box in enumerate(ndimage.find_objects(nuclei), 1):
        if box is not None:
            assert ndimage.label(nuclei[box] == nid, CROSS)[1] == 1


@pytest.mark.parametrize("kind", KINDS)
def test_ground_truth_is_exact_for_every_kind(kind):
    for seed in range(3):
        image, labels = heldout_tissue(72, 96, seed=seed, kind=kind)
        assert image.dtype == np.uint16 and image.shape == (1 if kind == "nuclear_only" else 2, 72, 96)
        assert labels.dtype == np.int32 and labels.shape == (2, 72, 96)
        assert image.std() > 0
        assert_exact_ground_truth(labels)


def test_some_cells_have_no_nucleus():
    missing = 0
    for seed in range(3):
        _, (cells, nuclei) = heldout_tissue(96, 96, seed=seed, kind="polygonal")
        missing += int(cells.max()) - len(np.unique(nuclei[nuclei > 0]))
    assert missing > 0


@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_same_image_other_seed_other_image(kind):
    image, labels = heldout_tissue(64, 64, seed=7, kind=kind)
    again, labels_again = heldout_tissue(64, 64, seed=7, kind=kind)
    other, _ = heldout_tissue(64, 64, seed=8, kind=kind)
    assert np.array_equal(image, again) and np.array_equal(labels, labels_again)
    assert not np.array_equal(image, other)


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="unknown kind"):
        heldout_tissue(64, 64, seed=0, kind="spheroid")


def test_cli_writes_tissuenet_npz(tmp_path, capsys):
    out = tmp_path / "mixed.npz"
    main([str(out), "--n", "3", "--size", "64", "--kind", "mixed", "--seed", "1"])
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    with np.load(out) as data:
        assert data["X"].shape == (3, 64, 64, 2) and data["X"].dtype == np.float32
        assert data["y"].shape == (3, 64, 64, 2) and data["y"].dtype == np.int32
        assert list(data["kinds"]) == ["polygonal", "cytoplasmic", "clustered"]
        for y in data["y"]:
            assert_exact_ground_truth(np.moveaxis(y, -1, 0))
    assert summary["images"] == 3 and len(summary["cells_per_image"]) == 3
    assert summary["median_cell_diameter_px"] > summary["median_nucleus_diameter_px"] > 0


def test_cli_nuclear_only_writes_one_channel_and_nuclei(tmp_path, capsys):
    out = tmp_path / "dapi.npz"
    main([str(out), "--n", "2", "--size", "64", "--kind", "nuclear_only"])
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    with np.load(out) as data:
        assert data["X"].shape == (2, 64, 64, 1) and data["X"].dtype == np.float32
        assert data["y"].shape == (2, 64, 64) and data["y"].dtype == np.int32
        for y in data["y"]:
            assert set(np.unique(y[y > 0])) == set(range(1, int(y.max()) + 1))
    assert summary["channels"] == 1 and summary["median_cell_diameter_px"] is None
