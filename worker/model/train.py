"""Train a PanopticNet on (X, y) tiles: augmentation, progress, best-validation or last weights.

Keras is imported inside the functions, so importing this module does not load TensorFlow.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Callable

import numpy as np
from scipy import ndimage as ndi

from worker.model.transforms import FEATURES, preprocess, targets_for

log = logging.getLogger(__name__)

EpochCallback = Callable[[int, int, dict], None]


def compute_devices() -> dict:
    """The Keras backend and the accelerators it sees.

    Returns
    -------
    dict
        ``backend`` (str), ``devices`` (list of str), ``gpu`` (bool).
    """
    import keras

    backend = keras.backend.backend()
    devices: list[str] = []
    if backend == "tensorflow":
        import tensorflow as tf

        devices = [d.name for d in tf.config.list_physical_devices()]
        gpu = bool(tf.config.list_physical_devices("GPU"))
    elif backend == "jax":
        import jax

        devices = [str(d) for d in jax.devices()]
        gpu = any(d.platform == "gpu" for d in jax.devices())
    elif backend == "torch":
        import torch

        gpu = torch.cuda.is_available()
        devices = ["cpu"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    else:
        gpu = False
    return {"backend": backend, "devices": devices, "gpu": gpu}


def augment_pair(
    image: np.ndarray,
    labels: np.ndarray,
    rng: np.random.Generator,
    crop_size: int,
    scale_range: tuple[float, float] = (0.8, 1.25),
) -> tuple[np.ndarray, np.ndarray]:
    """Random scaling, crop, flips and 90° rotation of one image and its label stack.

    Parameters
    ----------
    image : np.ndarray of float32, shape (H, W, C)
        Normalised image.
    labels : np.ndarray of int32, shape (H, W, F)
        Instance labels per feature.
    rng : np.random.Generator
        Source of randomness.
    crop_size : int
        Side of the square output (pixels); smaller inputs are zero-padded.
    scale_range : (float, float)
        Range of the isotropic zoom factor (log-uniform); (1, 1) disables scaling.

    Returns
    -------
    image : np.ndarray of float32, shape (crop_size, crop_size, C)
    labels : np.ndarray of int32, shape (crop_size, crop_size, F)
    """
    low, high = scale_range
    scale = float(np.exp(rng.uniform(np.log(low), np.log(high)))) if high > low else float(low)
    if abs(scale - 1.0) > 1e-3:
        # crop a window that becomes crop_size after zooming, then zoom only that window
        window = min(int(math.ceil(crop_size / scale)) + 2, image.shape[0], image.shape[1])
        y0 = int(rng.integers(0, image.shape[0] - window + 1))
        x0 = int(rng.integers(0, image.shape[1] - window + 1))
        image = image[y0 : y0 + window, x0 : x0 + window]
        labels = labels[y0 : y0 + window, x0 : x0 + window]
        image = ndi.zoom(image, (scale, scale, 1), order=1, grid_mode=True, mode="nearest")
        labels = ndi.zoom(labels, (scale, scale, 1), order=0, grid_mode=True, mode="nearest")
    rows, cols = image.shape[:2]
    if rows < crop_size or cols < crop_size:
        pad = ((0, max(0, crop_size - rows)), (0, max(0, crop_size - cols)), (0, 0))
        image = np.pad(image, pad)
        labels = np.pad(labels, pad)
        rows, cols = image.shape[:2]
    y0 = int(rng.integers(0, rows - crop_size + 1))
    x0 = int(rng.integers(0, cols - crop_size + 1))
    image = image[y0 : y0 + crop_size, x0 : x0 + crop_size]
    labels = labels[y0 : y0 + crop_size, x0 : x0 + crop_size]
    if rng.random() < 0.5:
        image, labels = image[:, ::-1], labels[:, ::-1]
    k = int(rng.integers(0, 4))
    image, labels = np.rot90(image, k), np.rot90(labels, k)
    return (np.ascontiguousarray(image, dtype=np.float32),
            np.ascontiguousarray(labels, dtype=np.int32))


def jitter_intensity(
    image: np.ndarray, rng: np.random.Generator, channel_dropout: float = 0.0
) -> np.ndarray:
    """Gamma and contrast jitter per channel, and random loss of the non-nuclear channels.

    Parameters
    ----------
    image : np.ndarray of float32, shape (H, W, C)
        Normalised image in [0, 1]; channel 0 is the nuclear stain.
    rng : np.random.Generator
    channel_dropout : float
        Probability that channels 1.. are zeroed together (a nuclear-only image).

    Returns
    -------
    np.ndarray of float32, shape (H, W, C)
        Values in [0, 1].
    """
    out = np.empty_like(image)
    for c in range(image.shape[-1]):
        gamma = float(np.exp(rng.uniform(np.log(0.6), np.log(1.6))))
        gain = float(rng.uniform(0.75, 1.25))
        out[..., c] = np.clip(gain * np.power(image[..., c], gamma), 0.0, 1.0)
    if image.shape[-1] > 1 and rng.random() < channel_dropout:
        out[..., 1:] = 0.0
    return out


def _augmented_batches(X, y, batch_size, steps_per_epoch, crop_size, seed, features,
                       scale_range=(0.8, 1.25), intensity_jitter=False, channel_dropout=0.0):
    import keras

    class AugmentedBatches(keras.utils.PyDataset):
        """Random augmented batches with their targets, computed on the fly."""

        def __init__(self):
            super().__init__()
            self.rng = np.random.default_rng(seed)

        def __len__(self):
            return steps_per_epoch

        def __getitem__(self, index):
            picks = self.rng.integers(0, X.shape[0], size=batch_size)
            pairs = [augment_pair(X[i], y[i], self.rng, crop_size, scale_range) for i in picks]
            if intensity_jitter or channel_dropout:
                pairs = [(jitter_intensity(p[0], self.rng, channel_dropout), p[1]) for p in pairs]
            images = np.stack([p[0] for p in pairs])
            labels = np.stack([p[1] for p in pairs])
            return images, targets_for(labels, features)

    return AugmentedBatches()


def _all_layers(model) -> list:
    """Every layer of a model, those of nested models (the backbone) included."""
    out = []
    for layer in model.layers:
        out.append(layer)
        if hasattr(layer, "layers"):
            out.extend(_all_layers(layer))
    return out


def _check_data(X, y, n_channels, name):
    X = np.asarray(X)
    y = np.asarray(y)
    if X.ndim != 4 or X.shape[-1] != n_channels:
        raise ValueError(
            f"X_{name} must have shape (N, H, W, {n_channels}) (channels last), got {X.shape}"
        )
    if y.ndim != 4 or y.shape[:3] != X.shape[:3]:
        raise ValueError(
            f"y_{name} must have shape (N, H, W, F) matching X_{name} {X.shape[:3]}, got {y.shape}"
        )
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"y_{name} must hold integer labels, got dtype {y.dtype}")
    if X.shape[0] == 0:
        raise ValueError(f"the {name} split is empty; the dataset needs more images")
    return X, y.astype(np.int32, copy=False)


def train_model(
    model,
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_val: np.ndarray,
    y_val: np.ndarray,
    *,
    n_channels: int,
    backbone: str = "resnet50",
    steps: int,
    batch_size: int = 8,
    lr: float = 1e-4,
    on_epoch: EpochCallback | None = None,
    seed: int = 0,
    steps_per_epoch: int | None = None,
    crop_size: int | None = None,
    normalize: bool = True,
    scale_range: tuple[float, float] = (0.8, 1.25),
    intensity_jitter: bool = False,
    channel_dropout: float = 0.0,
    freeze_batch_norm: bool | None = None,
    keep: str = "best",
):
    """Train (or fine-tune) a PanopticNet; keep the best validation loss's weights, the last or an average.

    Parameters
    ----------
    model : keras.Model or None
        Model to fine-tune, or None to build ``build_panoptic(n_channels, backbone)``.
    X_train, X_val : np.ndarray, shape (N, H, W, C)
        Raw images (normalised here unless ``normalize=False``), C = ``n_channels``.
    y_train, y_val : np.ndarray of int32, shape (N, H, W, F)
        Instance labels, features (whole_cell, nuclear) on the last axis.
    n_channels : int
        Input channels.
    backbone : {"resnet50", "small"}
        Backbone of a newly built model.
    steps : int
        Training steps (batches) in total; rounded to whole epochs of ``steps_per_epoch``.
    batch_size : int
        Images per step (8 in the paper).
    lr : float
        Adam learning rate (clipnorm 1e-3).
    on_epoch : callable or None
        Called after every epoch as ``on_epoch(epoch, n_epochs, logs)`` with epoch 1-based
        and ``logs`` the epoch's float losses (``loss``, ``val_loss``, per head).
    seed : int
        Seed of weight initialisation and augmentation.
    steps_per_epoch : int or None
        Steps between validations; None: one pass over the training images, at least 10
        steps and at most ``steps``.
    crop_size : int or None
        Side of the augmented training crops; None: min(256, H, W).
    normalize : bool
        Apply :func:`worker.model.transforms.preprocess` to X first.
    scale_range : (float, float)
        Zoom range of the augmentation (:func:`augment_pair`).
    intensity_jitter : bool
        Gamma and contrast jitter per channel (:func:`jitter_intensity`).
    channel_dropout : float
        Probability of zeroing the non-nuclear channels of a training crop.
    freeze_batch_norm : bool or None
        Keep batch normalisation in inference mode (its statistics unchanged); None: when a
        model is given (fine-tuning on a project's few images), not when one is built.
    keep : {"best", "last", "average"}
        Which weights to return: those of the epoch with the lowest validation loss, the last
        epoch's, or the mean of the weights at the end of each epoch of the second half of
        training (stochastic weight averaging, Izmailov et al. 2018).

    Returns
    -------
    model : keras.Model
        The model with the weights ``keep`` chose.
    history : dict
        Per-epoch lists (``loss``, ``val_loss``, per-head losses) and ``best_epoch``,
        ``best_val_loss``, ``kept`` (``keep``), ``averaged_epochs``, ``batch_norm`` (``"frozen"``
        or ``"trained"``), ``epochs``, ``steps_per_epoch``, ``steps``, ``seconds``, ``backend``,
        ``devices``, ``gpu``.
    """
    import keras

    from worker.model.panoptic import build_panoptic, compile_panoptic

    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if keep not in ("best", "last", "average"):
        raise ValueError(f"keep must be 'best', 'last' or 'average', got {keep!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    X_train, y_train = _check_data(X_train, y_train, n_channels, "train")
    X_val, y_val = _check_data(X_val, y_val, n_channels, "val")
    n_features = y_train.shape[-1]
    features = FEATURES[:n_features] if n_features <= len(FEATURES) else tuple(
        f"feature_{i}" for i in range(n_features)
    )

    devices = compute_devices()
    log.info("training on Keras backend %s, devices %s (GPU: %s)",
             devices["backend"], devices["devices"], devices["gpu"])

    keras.utils.set_random_seed(seed)
    if freeze_batch_norm is None:
        freeze_batch_norm = model is not None
    if model is None:
        model = build_panoptic(n_channels, backbone, features=features)
    elif model.input_shape[-1] != n_channels:
        raise ValueError(
            f"the model takes {model.input_shape[-1]} channels but n_channels={n_channels}"
        )
    # Fine-tuning keeps batch normalisation in inference mode (the Keras transfer-learning
    # recipe): a few images in small batches would otherwise overwrite the statistics the
    # starting model learned on far more data.
    frozen = [layer for layer in _all_layers(model)
              if freeze_batch_norm and isinstance(layer, keras.layers.BatchNormalization) and layer.trainable]
    for layer in frozen:
        layer.trainable = False
    compile_panoptic(model, lr=lr, jit_compile="auto" if devices["gpu"] else False)

    if normalize:
        X_train, X_val = preprocess(X_train), preprocess(X_val)
    else:
        X_train, X_val = X_train.astype(np.float32), X_val.astype(np.float32)
    if crop_size is None:
        crop_size = min(256, X_train.shape[1], X_train.shape[2])
    if steps_per_epoch is None:
        steps_per_epoch = min(steps, max(10, math.ceil(X_train.shape[0] / batch_size)))
    epochs = max(1, round(steps / steps_per_epoch))
    train_batches = _augmented_batches(
        X_train, y_train, batch_size, steps_per_epoch, crop_size, seed, features,
        scale_range, intensity_jitter, channel_dropout,
    )
    val_targets = targets_for(y_val, features)

    started = time.perf_counter()
    best = {"val_loss": math.inf, "epoch": 0, "weights": None}
    first_averaged = epochs // 2 + 1  # 1-based: the second half of the epochs (all when one)
    average = {"sum": None, "n": 0}

    class KeepBestAndReport(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs = {k: float(v) for k, v in (logs or {}).items()}
            val_loss = logs.get("val_loss", math.inf)
            if val_loss < best["val_loss"]:
                best.update(val_loss=val_loss, epoch=epoch + 1, weights=self.model.get_weights())
            if keep == "average" and epoch + 1 >= first_averaged:
                weights = [np.asarray(w, np.float64) for w in self.model.get_weights()]
                average["sum"] = weights if average["sum"] is None else [
                    a + w for a, w in zip(average["sum"], weights)]
                average["n"] += 1
            log.info("epoch %d/%d loss %.5f val_loss %.5f (%.0f s)", epoch + 1, epochs,
                     logs.get("loss", math.nan), val_loss, time.perf_counter() - started)
            if on_epoch is not None:
                on_epoch(epoch + 1, epochs, logs)

    fit = model.fit(
        train_batches,
        epochs=epochs,
        validation_data=(X_val, val_targets),
        validation_batch_size=batch_size,
        callbacks=[KeepBestAndReport()],
        verbose=0,
    )
    if keep == "best" and best["weights"] is not None:
        model.set_weights(best["weights"])
    elif keep == "average" and average["n"]:
        model.set_weights([(a / average["n"]).astype(w.dtype)
                           for a, w in zip(average["sum"], model.get_weights())])
    for layer in frozen:  # saved as trainable: the next fine-tune decides again
        layer.trainable = True
    history = {k: [float(v) for v in values] for k, values in fit.history.items()}
    history.update(
        best_epoch=best["epoch"],
        best_val_loss=best["val_loss"],
        kept=keep,
        averaged_epochs=average["n"],
        batch_norm="frozen" if frozen else "trained",
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        steps=epochs * steps_per_epoch,
        seconds=time.perf_counter() - started,
        **devices,
    )
    return model, history
