"""Appearance and morphology of synthetic tissue: one :class:`TissueStyle` per image.

The default style reproduces the project's original generator (mixed round, elongated and
concave cells with a thin bright membrane). :func:`random_style` draws far more varied tissue
for training a generalist model: cell diameters over a 4x range, spindle cells, large epithelial
cells with thick membranes, dense lymphocyte clusters, cytoplasmic instead of membranous
whole-cell stains, nuclei out of the focal plane, and varied background, noise, blur and
brightness. Pure NumPy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

__all__ = ["TissueStyle", "random_style", "style_family"]


@dataclass(frozen=True)
class TissueStyle:
    """How one synthetic image looks; every field has the original generator's value by default.

    Attributes
    ----------
    size_variation : float
        Exponent of the smooth local-size field: local diameter = mean x exp(v * field).
    size_jitter : float
        Log-normal sigma of each cell's own diameter around the local one.
    round_fraction, concave_fraction : float
        Shares of round and lobed cells; the rest are elongated.
    elongation : (float, float)
        Aspect-ratio range of elongated cells (spindles reach 4).
    fill : (float, float)
        Outline radius over half the diameter: above ~1.4 cells touch, below they leave gaps.
    nucleus_size : (float, float)
        Nuclear semi-minor axis as a fraction of the cell's minor radius.
    no_nucleus_fraction : float
        Cells without a nucleus in the focal plane.
    out_of_focus_fraction : float
        Nuclei rendered blurred and dim (out of the focal plane), still labelled.
    membrane_width : int
        Thickness (pixels) of the bright membrane rim.
    membrane_interior : float
        Membrane-channel level inside a cell relative to its rim (0.12: membranous stain;
        0.6-0.9: a cytoplasmic whole-cell stain).
    nuclear_hole : float
        How much the whole-cell stain is excluded from the nucleus (0 none, 1 fully).
    dapi_texture : float
        Chromatin texture amplitude of the nuclear stain.
    blur : float
        Multiplier of the optical blur of every channel.
    noise : float
        Multiplier of the shot and read noise.
    brightness : float
        Multiplier of the signal (low values: low signal-to-noise ratio).
    background : (float, float)
        Range of the additive background (counts).
    dim_fraction : float
        Cells much dimmer than the rest.
    """

    size_variation: float = 0.32
    size_jitter: float = 0.2
    round_fraction: float = 0.40
    concave_fraction: float = 0.25
    elongation: tuple[float, float] = (1.3, 2.6)
    fill: tuple[float, float] = (1.3, 1.6)
    nucleus_size: tuple[float, float] = (0.45, 0.7)
    no_nucleus_fraction: float = 0.10
    out_of_focus_fraction: float = 0.0
    membrane_width: int = 1
    membrane_interior: float = 0.12
    nuclear_hole: float = 0.0
    dapi_texture: float = 0.5
    blur: float = 1.0
    noise: float = 1.0
    brightness: float = 1.0
    background: tuple[float, float] = (150.0, 400.0)
    dim_fraction: float = 0.15

    def as_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


#: Morphology families a random style starts from (then appearance is varied on top).
_FAMILIES: dict[str, dict] = {
    "mixed": {},
    "epithelial": dict(size_variation=0.2, round_fraction=0.7, concave_fraction=0.1,
                       elongation=(1.2, 1.7), fill=(1.5, 1.8), nucleus_size=(0.3, 0.5),
                       membrane_width=3),
    "lymphoid": dict(size_variation=0.15, size_jitter=0.12, round_fraction=0.9,
                     concave_fraction=0.05, elongation=(1.1, 1.4), fill=(1.35, 1.6),
                     nucleus_size=(0.7, 0.85), no_nucleus_fraction=0.03),
    "stromal": dict(round_fraction=0.1, concave_fraction=0.1, elongation=(2.2, 4.0),
                    fill=(1.2, 1.5), nucleus_size=(0.5, 0.75)),
    "sparse": dict(fill=(1.0, 1.25), size_jitter=0.3),
    "heterogeneous": dict(size_variation=0.6, size_jitter=0.3),
}


def style_family(name: str) -> TissueStyle:
    """The base style of a morphology family (``mixed``, ``epithelial``, ``lymphoid``,
    ``stromal``, ``sparse``, ``heterogeneous``)."""
    if name not in _FAMILIES:
        raise ValueError(f"unknown tissue family {name!r}; choose one of {sorted(_FAMILIES)}")
    return TissueStyle(**_FAMILIES[name])


def random_style(rng: np.random.Generator) -> tuple[str, TissueStyle]:
    """A random family with randomly varied appearance.

    Parameters
    ----------
    rng : np.random.Generator

    Returns
    -------
    family : str
    style : TissueStyle
    """
    family = str(rng.choice(list(_FAMILIES)))
    style = style_family(family)
    cytoplasmic = rng.random() < 0.35
    style = replace(
        style,
        membrane_width=int(style.membrane_width if rng.random() < 0.5 else rng.integers(1, 4)),
        membrane_interior=float(rng.uniform(0.5, 0.9) if cytoplasmic else rng.uniform(0.05, 0.3)),
        nuclear_hole=float(rng.uniform(0.3, 1.0) if cytoplasmic else rng.uniform(0.0, 0.5)),
        out_of_focus_fraction=float(rng.choice([0.0, rng.uniform(0.05, 0.3)])),
        dapi_texture=float(rng.uniform(0.1, 0.8)),
        blur=float(np.exp(rng.uniform(np.log(0.6), np.log(2.0)))),
        noise=float(np.exp(rng.uniform(np.log(0.5), np.log(3.0)))),
        brightness=float(np.exp(rng.uniform(np.log(0.15), np.log(1.5)))),
        background=tuple(sorted(rng.uniform(50.0, 1500.0, 2).tolist())),
        dim_fraction=float(rng.uniform(0.0, 0.3)),
    )
    return family, style
