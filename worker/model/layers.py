"""Custom Keras layers of the PanopticNet, written with ``keras.ops`` only.

They trace with unknown height and width under TensorFlow, JAX and PyTorch, and are
registered (package ``looplabel``) so that ``.keras`` files load once this module is imported.
"""

from __future__ import annotations

import keras
from keras import layers, ops

_PACKAGE = "looplabel"

#: Stride of the coarsest pyramid level (P7); inputs are padded to a multiple of it.
NETWORK_STRIDE = 128


@keras.saving.register_keras_serializable(package=_PACKAGE)
class PadToMultiple(layers.Layer):
    """Zero-pad (N, H, W, C) at the bottom and right to H and W multiples of ``multiple``."""

    def __init__(self, multiple: int = NETWORK_STRIDE, **kwargs):
        super().__init__(**kwargs)
        self.multiple = int(multiple)

    def call(self, x):
        shape = ops.shape(x)
        pad_h = (-shape[1]) % self.multiple
        pad_w = (-shape[2]) % self.multiple
        return ops.pad(x, [[0, 0], [0, pad_h], [0, pad_w], [0, 0]])

    def compute_output_shape(self, input_shape):
        def up(size):
            return None if size is None else -(-size // self.multiple) * self.multiple

        return (input_shape[0], up(input_shape[1]), up(input_shape[2]), input_shape[3])

    def get_config(self):
        return {**super().get_config(), "multiple": self.multiple}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class CoordinateMap(layers.Layer):
    """Append two channels holding the row and column coordinate, scaled to [-1, 1]."""

    def call(self, x):
        shape = ops.shape(x)
        batch, rows, cols = shape[0], shape[1], shape[2]
        ys = ops.cast(ops.arange(rows), x.dtype)
        xs = ops.cast(ops.arange(cols), x.dtype)
        ys = ys / ops.maximum(ops.cast(rows - 1, x.dtype), 1.0) * 2.0 - 1.0
        xs = xs / ops.maximum(ops.cast(cols - 1, x.dtype), 1.0) * 2.0 - 1.0
        ys = ops.broadcast_to(ops.reshape(ys, (1, rows, 1, 1)), (batch, rows, cols, 1))
        xs = ops.broadcast_to(ops.reshape(xs, (1, 1, cols, 1)), (batch, rows, cols, 1))
        return ops.concatenate([x, ys, xs], axis=-1)

    def compute_output_shape(self, input_shape):
        channels = None if input_shape[3] is None else input_shape[3] + 2
        return (input_shape[0], input_shape[1], input_shape[2], channels)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class BilinearUpsample(layers.Layer):
    """Upsample (N, H, W, C) by ``2**doublings`` with repeated half-pixel bilinear doubling.

    Written with slicing, stacking and reshaping only, so it traces with unknown H and W
    (``keras.layers.UpSampling2D(interpolation="bilinear")`` needs static sizes under
    TensorFlow).
    """

    def __init__(self, doublings: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.doublings = int(doublings)

    @staticmethod
    def _double(x, axis):
        first = x[:, :1] if axis == 1 else x[:, :, :1]
        last = x[:, -1:] if axis == 1 else x[:, :, -1:]
        body_prev = x[:, :-1] if axis == 1 else x[:, :, :-1]
        body_next = x[:, 1:] if axis == 1 else x[:, :, 1:]
        previous = ops.concatenate([first, body_prev], axis=axis)
        following = ops.concatenate([body_next, last], axis=axis)
        even = 0.75 * x + 0.25 * previous
        odd = 0.75 * x + 0.25 * following
        shape = ops.shape(x)
        stacked = ops.stack([even, odd], axis=axis + 1)
        if axis == 1:
            return ops.reshape(stacked, (-1, shape[1] * 2, shape[2], x.shape[3]))
        return ops.reshape(stacked, (-1, shape[1], shape[2] * 2, x.shape[3]))

    def call(self, x):
        for _ in range(self.doublings):
            x = self._double(self._double(x, 1), 2)
        return x

    def compute_output_shape(self, input_shape):
        factor = 2**self.doublings

        def up(size):
            return None if size is None else size * factor

        return (input_shape[0], up(input_shape[1]), up(input_shape[2]), input_shape[3])

    def get_config(self):
        return {**super().get_config(), "doublings": self.doublings}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class CropToReference(layers.Layer):
    """Crop (N, H', W', K) to the height and width of a reference (N, H, W, ·), H ≤ H', W ≤ W'."""

    def call(self, inputs):
        x, reference = inputs
        shape = ops.shape(reference)
        return x[:, : shape[1], : shape[2], :]

    def compute_output_shape(self, input_shape):
        x_shape, ref_shape = input_shape
        return (x_shape[0], ref_shape[1], ref_shape[2], x_shape[3])
