"""``looplabel evaluate``: a labelled NPZ in, one JSON line out; bad input → a clear error, exit 1."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from backend.cli import main
from backend.core.synthetic import synthetic_tissue
from backend.errors import UserError
from worker.evaluate import load_labelled_npz


@pytest.fixture
def good_npz(tmp_path):
    tissues = [synthetic_tissue(96, 128, n_channels=2, seed=s) for s in (1, 2)]
    path = tmp_path / "good.npz"
    np.savez(path, X=np.stack([np.moveaxis(t.image, 0, -1) for t in tissues]),
             y=np.stack([np.moveaxis(t.labels, 0, -1) for t in tissues]))
    return path


def test_evaluate_prints_one_json_line_with_the_figures(good_npz):
    result = CliRunner().invoke(main, ["evaluate", str(good_npz), "--model", "baseline"])
    assert result.exit_code == 0, result.output
    line = result.output.strip().splitlines()[-1]
    figures = json.loads(line)
    assert figures["model"] == "baseline" and figures["n_images"] == 2
    assert 0.3 < figures["f1"] <= 1 and 0.3 < figures["nuclear_f1"] <= 1
    assert set(figures["errors"]) == {"correct", "missed", "gained", "split", "merge", "catastrophe"}
    assert 0 <= figures["precision"] <= 1 and 0 <= figures["recall"] <= 1 and figures["seconds"] >= 0


def test_nuclear_only_ground_truth_scores_nuclei_only(tmp_path):
    t = synthetic_tissue(96, 96, n_channels=1, seed=3)
    path = tmp_path / "nuclei.npz"
    np.savez(path, X=np.moveaxis(t.image, 0, -1)[None], y=t.nuclear[None])
    result = CliRunner().invoke(main, ["evaluate", str(path), "--model", "baseline"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output.strip().splitlines()[-1])
    assert figures["f1"] is None and figures["nuclear_f1"] > 0.3


def _write(tmp_path, name, **arrays):
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("arrays, message", [
    ({"X": np.zeros((1, 8, 8, 2))}, "no 'y'"),
    ({"y": np.zeros((1, 8, 8, 2), np.int32)}, "no 'X'"),
    ({"X": np.zeros((1, 8, 8, 2)), "y": np.zeros((1, 8, 9, 2), np.int32)}, "must have shape"),
    ({"X": np.full((1, 8, 8, 2), np.nan), "y": np.zeros((1, 8, 8, 2), np.int32)}, "finite"),
    ({"X": np.zeros((1, 8, 8, 2)), "y": np.full((1, 8, 8, 2), 0.5)}, "integer"),
    ({"X": np.zeros((1, 8, 8, 2)), "y": -np.ones((1, 8, 8, 2), np.int32)}, "negative"),
    ({"X": np.zeros((0, 8, 8, 2)), "y": np.zeros((0, 8, 8, 2), np.int32)}, "no images"),
])
def test_bad_data_is_refused_with_a_message_and_a_nonzero_exit(tmp_path, arrays, message):
    path = _write(tmp_path, "bad.npz", **arrays)
    with pytest.raises(UserError, match=message):
        load_labelled_npz(path)
    result = CliRunner().invoke(main, ["evaluate", str(path), "--model", "baseline"])
    assert result.exit_code != 0 and message in result.output


def test_not_an_npz_and_bad_options_are_refused(tmp_path, good_npz):
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip archive")
    for args, message in [([str(junk)], "not a readable .npz"),
                          ([str(good_npz), "--channels", "0,7"], "2 channel(s)"),
                          ([str(good_npz), "--channels", "a,b"], "channel indices"),
                          ([str(good_npz), "--model", "resnet"], "--model must be"),
                          ([str(good_npz), "--model", "missing.keras"], "no model file"),
                          ([str(good_npz), "--mpp", "-1"], "--mpp")]:
        result = CliRunner().invoke(main, ["evaluate", *args, *([] if "--model" in args else ["--model", "baseline"])])
        assert result.exit_code != 0, (args, result.output)
        assert message in result.output, (args, result.output)
