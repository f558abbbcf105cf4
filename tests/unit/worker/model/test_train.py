"""Tests of worker.model.train: augmentation, training steps, best-validation weights."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backend.core.synthetic import synthetic_tissue
from worker.model.train import augment_pair
from worker.model.transforms import preprocess, targets_for


def _tiles(seeds, size=64):
    tissues = [synthetic_tissue(size, size, n_channels=2, seed=s) for s in seeds]
    X = np.stack([np.moveaxis(t.image, 0, -1) for t in tissues]).astype(np.float32)
    y = np.stack([np.moveaxis(t.labels, 0, -1) for t in tissues])
    return X, y


@settings(deadline=None, max_examples=30)
@given(st.integers(0, 2**32 - 1), st.integers(16, 48))
def test_augment_pair_keeps_image_and_labels_aligned(seed, crop):
    yy, xx = np.mgrid[:40, :40]
    labels = np.zeros((40, 40, 2), np.int32)
    labels[..., 0] = (yy // 10) * 4 + xx // 10 + 1  # 10 x 10 blocks, every pixel labelled
    labels[..., 1] = labels[..., 0] * 2
    image = labels[..., :1].astype(np.float32)  # the image holds the label id
    out_image, out_labels = augment_pair(image, labels, np.random.default_rng(seed), crop)
    assert out_image.shape == (crop, crop, 1) and out_image.dtype == np.float32
    assert out_labels.shape == (crop, crop, 2) and out_labels.dtype == np.int32
    assert set(np.unique(out_labels[..., 0])) <= set(np.unique(labels[..., 0])) | {0}
    # features stay aligned with each other, and the image with the labels (away from
    # interpolated edges between ids)
    np.testing.assert_array_equal(out_labels[..., 1], out_labels[..., 0] * 2)
    inside = out_labels[..., 0] > 0
    exact = np.abs(out_image[..., 0] - out_labels[..., 0]) < 1
    assert exact[inside].mean() > 0.5


def test_augment_without_scaling_only_flips_and_rotates():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 5, (32, 32, 2)).astype(np.int32)
    image = rng.random((32, 32, 2), dtype=np.float32)
    out_image, out_labels = augment_pair(image, labels, rng, 32, scale_range=(1.0, 1.0))
    candidates = [np.rot90(a, k) for a in (labels, labels[:, ::-1]) for k in range(4)]
    assert any(np.array_equal(out_labels, c) for c in candidates)
    np.testing.assert_array_equal(np.sort(out_image.ravel()), np.sort(image.ravel()))


@pytest.fixture(scope="module")
def trained():
    """A few epochs of a small model; after epoch 2 the weights are wrecked on purpose."""
    keras = pytest.importorskip("keras")
    from worker.model.panoptic import build_panoptic
    from worker.model.train import train_model

    X, y = _tiles(range(10))
    keras.utils.set_random_seed(0)
    model = build_panoptic(2, "small")
    calls = []

    def on_epoch(epoch, n_epochs, logs):
        calls.append((epoch, n_epochs, dict(logs)))
        if epoch == 2:  # the third epoch starts from garbage: its weights must not be kept
            rng = np.random.default_rng(0)
            for w in model.trainable_weights:
                w.assign(np.asarray(w) + rng.normal(0, 5, w.shape).astype(w.dtype))

    model, history = train_model(
        model, X[:8], y[:8], X[8:], y[8:], n_channels=2, backbone="small", steps=9,
        batch_size=4, lr=1e-3, steps_per_epoch=3, on_epoch=on_epoch, seed=0,
    )
    return model, history, calls, (X[8:], y[8:])


def test_training_steps_lower_the_loss(trained):
    _, history, _, _ = trained
    assert history["loss"][1] < history["loss"][0]
    assert history["steps"] == 9 and history["epochs"] == 3


def test_progress_is_reported_every_epoch(trained):
    _, history, calls, _ = trained
    assert [c[:2] for c in calls] == [(1, 3), (2, 3), (3, 3)]
    assert all({"loss", "val_loss"} <= set(c[2]) for c in calls)
    assert history["backend"] and isinstance(history["gpu"], bool) and history["devices"]


def test_best_validation_weights_are_kept(trained):
    model, history, _, (X_val, y_val) = trained
    val = history["val_loss"]
    assert np.isnan(val[2]) or val[2] > min(val[:2])  # the wrecked epoch is worse (or overflows)
    assert history["best_epoch"] == int(np.nanargmin(val)) + 1
    result = model.evaluate(preprocess(X_val), targets_for(y_val), batch_size=4,
                            verbose=0, return_dict=True)
    assert result["loss"] == pytest.approx(history["best_val_loss"], rel=1e-3)
    assert history["kept"] == "best"


def test_keep_last_returns_the_last_epochs_weights_even_when_an_earlier_one_validated_better():
    keras = pytest.importorskip("keras")
    from worker.model.panoptic import build_panoptic
    from worker.model.train import train_model

    X, y = _tiles(range(4), size=48)
    keras.utils.set_random_seed(2)
    model = build_panoptic(2, "small")

    def wreck_after_the_first_epoch(epoch, n_epochs, logs):
        if epoch == 1:
            rng = np.random.default_rng(0)
            for w in model.trainable_weights:
                w.assign(np.asarray(w) + rng.normal(0, 1, w.shape).astype(w.dtype))

    model, history = train_model(model, X[:3], y[:3], X[3:], y[3:], n_channels=2, backbone="small",
                                 steps=4, batch_size=2, lr=1e-3, steps_per_epoch=2, keep="last",
                                 on_epoch=wreck_after_the_first_epoch, freeze_batch_norm=False)
    val = history["val_loss"]
    assert history["kept"] == "last" and history["best_epoch"] == 1 and val[1] > val[0]
    result = model.evaluate(preprocess(X[3:]), targets_for(y[3:]), batch_size=2, verbose=0, return_dict=True)
    assert result["loss"] == pytest.approx(val[1], rel=1e-3)
    with pytest.raises(ValueError, match="keep"):
        train_model(None, X, y, X, y, n_channels=2, backbone="small", steps=1, keep="first")


def test_keep_average_returns_the_mean_of_the_second_half_of_the_epochs_weights():
    keras = pytest.importorskip("keras")
    from worker.model.panoptic import build_panoptic
    from worker.model.train import train_model

    X, y = _tiles(range(4), size=48)
    keras.utils.set_random_seed(3)
    model = build_panoptic(2, "small")
    seen = []

    def record(epoch, n_epochs, logs):
        seen.append([np.array(w, dtype=np.float64) for w in model.get_weights()])

    model, history = train_model(model, X[:3], y[:3], X[3:], y[3:], n_channels=2, backbone="small",
                                 steps=8, batch_size=2, lr=1e-2, steps_per_epoch=2, keep="average",
                                 on_epoch=record)
    assert history["epochs"] == 4 and history["averaged_epochs"] == 2 and history["kept"] == "average"
    expected = [(a + b) / 2 for a, b in zip(seen[2], seen[3])]
    got = model.get_weights()
    assert all(np.allclose(g, e, atol=1e-6) for g, e in zip(got, expected))
    moved = [not np.allclose(a, b) for a, b in zip(seen[2], seen[3])]
    assert any(moved)  # the average differs from the last epoch's weights
    assert not all(np.allclose(g, b, atol=1e-6) for g, b in zip(got, seen[3]))


def test_train_model_rejects_mismatched_channels():
    pytest.importorskip("keras")
    from worker.model.train import train_model

    X, y = _tiles([0, 1])
    with pytest.raises(ValueError, match="channels last"):
        train_model(None, X, y, X, y, n_channels=3, backbone="small", steps=1)
    with pytest.raises(ValueError, match="steps"):
        train_model(None, X, y, X, y, n_channels=2, backbone="small", steps=0)


def _batch_norm_stats(model):
    from worker.model.train import _all_layers

    keras = pytest.importorskip("keras")
    layers = [layer for layer in _all_layers(model) if isinstance(layer, keras.layers.BatchNormalization)]
    return layers, [np.array(layer.moving_mean) for layer in layers]


def test_fine_tuning_keeps_batch_norm_statistics_and_training_from_scratch_learns_them():
    keras = pytest.importorskip("keras")
    from worker.model.panoptic import build_panoptic
    from worker.model.train import train_model

    X, y = _tiles(range(4), size=48)
    keras.utils.set_random_seed(1)
    start = build_panoptic(2, "small")
    layers, before = _batch_norm_stats(start)
    assert len(layers) >= 20  # the backbone's (a nested model) and the heads'
    tuned, history = train_model(start, X[:3], y[:3], X[3:], y[3:], n_channels=2, backbone="small",
                                 steps=2, batch_size=2, lr=1e-3, steps_per_epoch=2)
    layers, after = _batch_norm_stats(tuned)
    assert history["batch_norm"] == "frozen"
    assert all(np.array_equal(a, b) for a, b in zip(before, after))
    assert all(layer.trainable for layer in layers)  # saved trainable: the next fine-tune decides
    scratch, history = train_model(None, X[:3], y[:3], X[3:], y[3:], n_channels=2, backbone="small",
                                   steps=2, batch_size=2, lr=1e-3, steps_per_epoch=2)
    _, learned = _batch_norm_stats(scratch)
    assert history["batch_norm"] == "trained"
    assert any(not np.allclose(m, 0.0) for m in learned)
