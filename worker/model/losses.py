"""PanopticNet losses, written with ``keras.ops`` only (any Keras backend).

Softmax cross-entropy scaled by 0.01 for the pixel-wise heads and mean squared error for the
inner-distance heads (Greenwald et al., Methods). Registered (package ``looplabel``) so that
compiled ``.keras`` files load once this module is imported.
"""

from __future__ import annotations

import keras
from keras import ops

from worker.model.transforms import FEATURES, output_names

_PACKAGE = "looplabel"
PIXELWISE_LOSS_WEIGHT = 0.01


@keras.saving.register_keras_serializable(package=_PACKAGE)
def pixelwise_loss(y_true, y_pred):
    """Softmax cross-entropy scaled by 0.01.

    Parameters
    ----------
    y_true : tensor, shape (N, H, W, 3)
        One-hot (background, interior, border).
    y_pred : tensor, shape (N, H, W, 3)
        Softmax probabilities.

    Returns
    -------
    tensor, shape (N, H, W)
        Per-pixel loss.
    """
    y_true = ops.cast(y_true, y_pred.dtype)
    y_pred = ops.clip(y_pred, keras.backend.epsilon(), 1.0)
    return -PIXELWISE_LOSS_WEIGHT * ops.sum(y_true * ops.log(y_pred), axis=-1)


@keras.saving.register_keras_serializable(package=_PACKAGE)
def distance_loss(y_true, y_pred):
    """Mean squared error of the inner distance.

    Parameters
    ----------
    y_true, y_pred : tensor, shape (N, H, W, 1)

    Returns
    -------
    tensor, shape (N, H, W)
        Per-pixel loss.
    """
    y_true = ops.cast(y_true, y_pred.dtype)
    return ops.mean(ops.square(y_true - y_pred), axis=-1)


def panoptic_losses(features: tuple[str, ...] = FEATURES) -> dict:
    """Loss per named output, for ``model.compile(loss=...)``.

    Parameters
    ----------
    features : tuple of str
        Feature names of the model.

    Returns
    -------
    dict of str to callable
        ``{feature}_pixelwise`` → :func:`pixelwise_loss`, ``{feature}_distance`` →
        :func:`distance_loss`.
    """
    return {
        name: pixelwise_loss if name.endswith("_pixelwise") else distance_loss
        for name in output_names(features)
    }
