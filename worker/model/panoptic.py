"""PanopticNet in Keras 3, written against ``keras.ops`` only (TensorFlow, JAX or PyTorch).

Architecture (Greenwald et al., Methods, "PanopticNet architecture"):

* the input (any number of channels) is zero-padded on the bottom/right to a multiple of the
  network stride (128 = 2**7, the stride of P7) and concatenated with a coordinate map;
* backbone: ResNet50 (``keras.applications``, ``weights=None``: never downloads) or a small
  strided conv net for tests and CPU demos; C3, C4 and C5 (strides 8, 16, 32) feed
* a feature pyramid P3–P7: 1×1 lateral convolutions with a nearest-neighbour top-down path,
  3×3 depthwise-separable smoothing, P6/P7 by strided depthwise-separable convolutions;
* per feature (whole-cell, nuclear) two semantic heads: every pyramid level is convolved,
  bilinearly upsampled to P3 and summed, then upsampled ×8 to the input size in three
  doublings, each joined (U-Net style) by shared backbone features of that resolution
  (strides 4 and 2, and a 3×3 convolution of the input): our one departure from the paper,
  as cells and nuclei of a few pixels are below the pyramid's stride of 8;
  the pixel-wise head ends in a 3-class softmax, the inner-distance head is linear;
* outputs are cropped back to the input size, so the model accepts any (H, W), and are
  returned as a dict keyed by :func:`worker.model.transforms.output_names`.

Losses (:mod:`worker.model.losses`): softmax cross-entropy scaled by 0.01 on the pixel-wise
heads, MSE on the distance heads. Custom layers live in :mod:`worker.model.layers`; both are
registered for ``.keras`` save / load (use :func:`load_panoptic`).

Keras is imported at module import: import this module only where Keras may load.
"""

from __future__ import annotations

import warnings

import keras
from keras import layers

from worker.model.layers import (
    NETWORK_STRIDE,
    BilinearUpsample,
    CoordinateMap,
    CropToReference,
    PadToMultiple,
)
from worker.model.losses import panoptic_losses
from worker.model.transforms import FEATURES, PIXELWISE_CLASSES, output_names

__all__ = ["NETWORK_STRIDE", "build_panoptic", "compile_panoptic", "load_panoptic"]

PYRAMID_LEVELS = (3, 4, 5, 6, 7)
_BACKBONES = ("resnet50", "small")


def _resnet50_backbone(channels: int) -> keras.Model:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*input channels.*")
        resnet = keras.applications.ResNet50(
            include_top=False, weights=None, input_shape=(None, None, channels)
        )
    outputs = [
        resnet.get_layer(name).output
        for name in ("conv1_relu", "conv2_block3_out", "conv3_block4_out", "conv4_block6_out",
                     "conv5_block3_out")
    ]
    return keras.Model(resnet.input, outputs, name="resnet50_backbone")


def _small_backbone(channels: int, width: int = 16) -> keras.Model:
    inputs = keras.Input((None, None, channels))
    x = inputs
    outputs = []
    for stage, filters in enumerate((width, width, 2 * width, 3 * width, 4 * width), start=1):
        x = layers.Conv2D(filters, 3, strides=2, padding="same", use_bias=False,
                          name=f"small_c{stage}_down")(x)
        x = layers.BatchNormalization(name=f"small_c{stage}_bn1")(x)
        x = layers.ReLU(name=f"small_c{stage}_relu1")(x)
        shortcut = x
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False,
                          name=f"small_c{stage}_conv")(x)
        x = layers.BatchNormalization(name=f"small_c{stage}_bn2")(x)
        x = layers.Add(name=f"small_c{stage}_add")([x, shortcut])
        x = layers.ReLU(name=f"small_c{stage}_out")(x)
        outputs.append(x)
    return keras.Model(inputs, outputs, name="small_backbone")


def _feature_pyramid(c3, c4, c5, filters: int) -> dict[int, object]:
    lateral = {
        level: layers.Conv2D(filters, 1, name=f"P{level}_lateral")(c)
        for level, c in ((3, c3), (4, c4), (5, c5))
    }
    top_down = {5: lateral[5]}
    for level in (4, 3):
        upsampled = layers.UpSampling2D(2, name=f"P{level + 1}_upsampled")(top_down[level + 1])
        top_down[level] = layers.Add(name=f"P{level}_merged")([lateral[level], upsampled])
    pyramid = {
        level: layers.SeparableConv2D(filters, 3, padding="same", name=f"P{level}")(top_down[level])
        for level in (3, 4, 5)
    }
    pyramid[6] = layers.SeparableConv2D(filters, 3, strides=2, padding="same", name="P6")(c5)
    p6_relu = layers.ReLU(name="P6_relu")(pyramid[6])
    pyramid[7] = layers.SeparableConv2D(filters, 3, strides=2, padding="same", name="P7")(p6_relu)
    return pyramid


def _detail_features(c1, c2, located, filters: int) -> list:
    """Shared high-resolution features for the heads: strides 4, 2 and 1."""
    d2 = layers.Conv2D(filters, 1, activation="relu", name="detail_s4")(c2)
    d1 = layers.Conv2D(filters, 1, activation="relu", name="detail_s2")(c1)
    d0 = layers.Conv2D(max(filters // 2, 8), 3, padding="same", activation="relu",
                       name="detail_s1")(located)
    return [d2, d1, d0]


def _semantic_head(pyramid: dict, details: list, name: str, n_classes: int, activation: str,
                   filters: int):
    merged = []
    for level in PYRAMID_LEVELS:
        x = layers.Conv2D(filters, 3, padding="same", name=f"{name}_P{level}_conv")(pyramid[level])
        x = layers.ReLU(name=f"{name}_P{level}_relu")(x)
        if level > 3:
            x = BilinearUpsample(level - 3, name=f"{name}_P{level}_up")(x)
        merged.append(x)
    x = layers.Add(name=f"{name}_merged")(merged)
    # 1/8 → 1/4 → 1/2 → 1, each step joined by the backbone's features of that resolution
    # (objects of a few pixels, such as small nuclei, are below the pyramid's stride of 8)
    for step, (size, detail) in enumerate(zip((max(filters // 2, 8), max(filters // 4, 8),
                                               max(filters // 4, 8)), details)):
        x = BilinearUpsample(1, name=f"{name}_up{step}")(x)
        x = layers.Concatenate(name=f"{name}_join{step}")([x, detail])
        x = layers.Conv2D(size, 3, padding="same", use_bias=False,
                          name=f"{name}_conv{step}")(x)
        x = layers.BatchNormalization(name=f"{name}_bn{step}")(x)
        x = layers.ReLU(name=f"{name}_relu{step}")(x)
    x = layers.Conv2D(n_classes, 1, name=f"{name}_logits")(x)
    return layers.Activation(activation, dtype="float32", name=f"{name}_{activation}")(x)


_CONFIGS = {
    "resnet50": {"pyramid_filters": 128, "head_filters": 64, "detail_filters": 32},
    "small": {"pyramid_filters": 32, "head_filters": 32, "detail_filters": 16},
}


def build_panoptic(
    n_channels: int,
    backbone: str = "resnet50",
    input_size: int | tuple[int, int] | None = None,
    *,
    features: tuple[str, ...] = FEATURES,
    pyramid_filters: int | None = None,
    head_filters: int | None = None,
) -> keras.Model:
    """Build an untrained PanopticNet with two heads per feature.

    Parameters
    ----------
    n_channels : int
        Input channels (e.g. 2 for nuclear + membrane, 6+ for lineage-aware models).
    backbone : {"resnet50", "small"}
        ResNet50 (random weights; never downloaded) or a small residual conv net.
    input_size : int, (int, int) or None
        Fixed input height/width, or None for any size. Any size works: inputs are padded to a
        multiple of :data:`NETWORK_STRIDE` inside the model and the outputs cropped back;
        sizes that are multiples of 128 waste no work.
    features : tuple of str
        Label features, default ``("whole_cell", "nuclear")``.
    pyramid_filters, head_filters : int or None
        Channel widths of the pyramid and of the semantic heads (None: backbone default,
        resnet50 128/64, small 32/32).

    Returns
    -------
    keras.Model
        Input (N, H, W, n_channels) float32; outputs a dict of ``{feature}_pixelwise``
        (N, H, W, 3) softmax and ``{feature}_distance`` (N, H, W, 1), all float32.
    """
    if int(n_channels) < 1:
        raise ValueError(f"n_channels must be >= 1, got {n_channels}")
    if backbone not in _BACKBONES:
        raise ValueError(f"unknown backbone {backbone!r}; choose one of {_BACKBONES}")
    if input_size is None:
        rows = cols = None
    elif isinstance(input_size, int):
        rows = cols = input_size
    else:
        rows, cols = input_size
    config = dict(_CONFIGS[backbone])
    if pyramid_filters is not None:
        config["pyramid_filters"] = int(pyramid_filters)
    if head_filters is not None:
        config["head_filters"] = int(head_filters)

    inputs = keras.Input((rows, cols, int(n_channels)), name="image")
    padded = PadToMultiple(NETWORK_STRIDE, name="pad_to_stride")(inputs)
    located = CoordinateMap(name="coordinates")(padded)
    if backbone == "resnet50":
        body = _resnet50_backbone(int(n_channels) + 2)
    else:
        body = _small_backbone(int(n_channels) + 2)
    c1, c2, c3, c4, c5 = body(located)
    pyramid = _feature_pyramid(c3, c4, c5, config["pyramid_filters"])
    details = _detail_features(c1, c2, located, config["detail_filters"])

    outputs = {}
    for name in output_names(features):
        if name.endswith("_pixelwise"):
            head = _semantic_head(pyramid, details, name, len(PIXELWISE_CLASSES), "softmax",
                                  config["head_filters"])
        else:
            head = _semantic_head(pyramid, details, name, 1, "linear", config["head_filters"])
        outputs[name] = CropToReference(name=name)([head, inputs])
    return keras.Model(inputs, outputs, name=f"panoptic_{backbone}")


def compile_panoptic(
    model: keras.Model, lr: float = 1e-4, clipnorm: float = 1e-3, jit_compile="auto"
) -> keras.Model:
    """Compile with Adam(lr, clipnorm) and the PanopticNet losses (in place; returns the model).

    Parameters
    ----------
    model : keras.Model
        A model from :func:`build_panoptic` (its output names define the features).
    lr : float
        Adam learning rate (1e-4 in the paper).
    clipnorm : float
        Gradient norm clip (1e-3 in the paper).
    jit_compile : bool or "auto"
        XLA compilation; on a CPU False is faster (XLA doubled the step time and the first-step
        compile time of the small model on a 2-core CPU).

    Returns
    -------
    keras.Model
        The same model, compiled.
    """
    features = tuple(
        name[: -len("_pixelwise")] for name in model.output_names if name.endswith("_pixelwise")
    )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=lr, clipnorm=clipnorm),
        loss=panoptic_losses(features),
        jit_compile=jit_compile,
    )
    return model


def load_panoptic(path) -> keras.Model:
    """Load a PanopticNet saved with ``model.save(path)`` (``.keras``).

    Importing this module registers the custom layers and losses; ``keras.models.load_model``
    called without that import fails with "Could not locate class 'PadToMultiple'".

    Parameters
    ----------
    path : str or os.PathLike
        File written by ``model.save``.

    Returns
    -------
    keras.Model
        The model, compiled as it was saved.
    """
    return keras.models.load_model(path)
