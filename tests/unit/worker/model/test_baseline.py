"""Tests of worker.model.baseline: the classical round-0 segmenter."""

from pathlib import Path

import numpy as np
import pytest

from backend.core.metrics import object_metrics
from backend.core.synthetic import synthetic_tissue
from worker.model.baseline import segment_baseline, segment_nuclei

REAL = Path(__file__).resolve().parents[4] / ".." / "shared" / "data" / "real" / "stardist_dsb2018"


@pytest.fixture(scope="module")
def tissue_and_labels():
    tissue = synthetic_tissue(256, 256, n_channels=3, seed=7)
    return tissue, segment_baseline(tissue.image)


def test_output_is_an_int32_label_stack(tissue_and_labels):
    tissue, labels = tissue_and_labels
    assert labels.shape == (2,) + tissue.image.shape[1:]
    assert labels.dtype == np.int32


def test_nuclei_lie_inside_the_cell_with_their_id(tissue_and_labels):
    _, labels = tissue_and_labels
    cells, nuclei = labels
    has_nucleus = nuclei > 0
    np.testing.assert_array_equal(nuclei[has_nucleus], cells[has_nucleus])
    assert set(np.unique(nuclei)) <= set(np.unique(cells))


def test_baseline_is_decent_on_synthetic_tissue(tissue_and_labels):
    tissue, labels = tissue_and_labels
    assert object_metrics(tissue.nuclear, labels[1]).f1 > 0.6
    assert object_metrics(tissue.whole_cell, labels[0]).f1 > 0.45


def test_touching_nuclei_are_split():
    image = np.zeros((60, 80), np.float32)
    yy, xx = np.mgrid[:60, :80]
    for cx in (28, 45):  # two discs of radius 9 overlapping by 1 px
        image[(yy - 30) ** 2 + (xx - cx) ** 2 <= 81] = 100
    nuclei = segment_nuclei(image + 5)
    assert nuclei.max() == 2
    assert nuclei[30, 24] != nuclei[30, 49]


def test_without_membrane_cells_are_grown_nuclei():
    tissue = synthetic_tissue(128, 128, n_channels=1, seed=3)
    cells, nuclei = segment_baseline(tissue.image, membrane_channel=None)
    assert ((cells > 0) >= (nuclei > 0)).all()
    assert (cells > 0).sum() > (nuclei > 0).sum()


def test_bad_channels_are_reported():
    image = np.zeros((2, 32, 32), np.uint16)
    with pytest.raises(ValueError, match="nuclear_channel"):
        segment_baseline(image, nuclear_channel=2)
    with pytest.raises(ValueError, match="membrane_channel=None"):
        segment_baseline(image, membrane_channel=5)
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        segment_baseline(np.zeros((32, 32)))


def test_blank_image_gives_no_cells():
    labels = segment_baseline(np.zeros((2, 40, 40), np.uint16))
    assert labels.max() == 0


@pytest.mark.skipif(not (REAL / "img2d.tif").exists(), reason="real DSB 2018 image not present")
def test_nuclei_on_a_real_fluorescence_image():
    import tifffile

    image = tifffile.imread(REAL / "img2d.tif")
    truth = tifffile.imread(REAL / "mask2d.tif").astype(np.int32)
    labels = segment_baseline(image[None], membrane_channel=None)
    assert object_metrics(truth, labels[1]).f1 > 0.7
