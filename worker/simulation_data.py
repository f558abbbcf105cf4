"""Where a simulation's images come from: the synthetic generator, or a lab's labelled NPZ.

With ``looplabel simulate --data FILE.npz`` the whole loop runs on a lab's own labelled images
(their ground truth is what a careful simulated annotator aims at), so a lab can estimate what
the loop will cost before paying a crowd. The first ``test_images`` images are the held-out
yardstick no round sees; the others are uploaded ``images`` per round.

Rounds are balanced by cell count (:func:`balanced_rounds`): images differ far more than a
round's model gain — of sixteen 512² synthetic images, one held 519 cells with 29 under 100 px
and another 1,321 with 656, and the same model's predictions held 46 errors per crop on one
round's four images and 97 on another's. Each round gets one image of each stratum of cell
count; that narrows the spread of the rounds' cell totals (on those sixteen images, from 2,755–3,612
to 3,092–3,554) but cannot split one outlier image, so a round's corrections still carry part of
its images' difficulty.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np


class SimulationDataError(ValueError):
    """The data file cannot feed the simulation (the message says why)."""


def balanced_rounds(cell_counts: list[int], rounds: int, per_round: int, seed: int) -> list[list[int]]:
    """Deal ``rounds * per_round`` images to the rounds, one of each stratum of cell count per round.

    The images, sorted by cell count, form ``per_round`` strata of ``rounds`` consecutive images;
    the images of each stratum go to the rounds in a random order (``seed``). Returns, per round,
    the indices of its images into ``cell_counts``.
    """
    if len(cell_counts) != rounds * per_round:
        raise ValueError(f"{len(cell_counts)} images cannot fill {rounds} rounds of {per_round}")
    rng = np.random.default_rng(seed)
    order = sorted(range(len(cell_counts)), key=lambda i: (cell_counts[i], i))
    plan: list[list[int]] = [[] for _ in range(rounds)]
    for start in range(0, len(order), rounds):
        for r, i in zip(rng.permutation(rounds), order[start:start + rounds]):
            plan[int(r)].append(i)
    return plan


def cell_count(labels: np.ndarray) -> int:
    """Objects in one (H, W) label image."""
    return int(np.count_nonzero(np.unique(labels)))


class SyntheticImages:
    """The project's synthetic tissue generator (the default)."""

    def __init__(self, size: int, channels: int, seed: int, images_per_round: int, test_images: int,
                 rounds: int = 1):
        self.size, self.channels, self.seed = size, channels, seed
        self.images_per_round, self.n_test, self.rounds = images_per_round, test_images, rounds
        self._plan: list[list[int]] | None = None

    @property
    def channel_names(self) -> list[str]:
        return ["DAPI", "membrane"] + [f"lineage_{k}" for k in range(1, self.channels - 1)]

    def _seed(self, index: int) -> int:
        r, k = divmod(index, self.images_per_round)
        return self.seed * 100_003 + r * 1000 + k

    def round_files(self, r: int) -> list[tuple[str, bytes]]:
        from backend.core.synthetic import synthetic_tissue
        from backend.services.demo import synthetic_npz

        if self._plan is None:  # every image of the run is drawn once to count its cells
            counts = [cell_count(synthetic_tissue(self.size, self.size, n_channels=self.channels,
                                                  seed=self._seed(i)).whole_cell)
                      for i in range(self.rounds * self.images_per_round)]
            self._plan = balanced_rounds(counts, self.rounds, self.images_per_round, self.seed)
        return [(f"sim_r{r}_{k:03d}.npz", synthetic_npz(self.size, self.size, self.channels, seed=self._seed(i)))
                for k, i in enumerate(self._plan[r])]

    def test_set(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        from backend.core.synthetic import synthetic_tissue

        tissues = [synthetic_tissue(self.size, self.size, n_channels=self.channels,
                                    seed=self.seed * 100_003 + 90_000 + k) for k in range(self.n_test)]
        if not tissues:
            return None, None
        return (np.stack([np.moveaxis(t.image, 0, -1) for t in tissues]).astype(np.float32),
                np.stack([np.moveaxis(t.labels, 0, -1) for t in tissues]))

    def describe(self) -> str:
        return f"{self.images_per_round} new synthetic {self.size}² images per round"


class LabelledFileImages:
    """A lab's labelled images: a TissueNet-layout NPZ with whole-cell and nuclear truth."""

    def __init__(self, path: Path, channels: str | None, images_per_round: int, rounds: int,
                 test_images: int):
        from backend.errors import UserError
        from worker.evaluate import load_labelled_npz

        try:
            data = load_labelled_npz(path, channels)
        except UserError as exc:
            raise SimulationDataError(exc.message) from None
        if data.nuclear_only:
            raise SimulationDataError(f"{Path(path).name}: the simulation needs whole-cell and nuclear "
                                      "ground truth (y of shape (N,H,W,2))")
        picked = [data.nuclear_channel] + ([data.membrane_channel] if data.membrane_channel is not None else [])
        self.X = data.X[..., picked]
        self.y = data.y
        needed = test_images + images_per_round * rounds
        if self.X.shape[0] < needed:
            raise SimulationDataError(
                f"{Path(path).name} holds {self.X.shape[0]} images; {rounds} rounds of {images_per_round} "
                f"plus {test_images} held-out test images need {needed} (lower --images or --rounds)")
        self.path, self.images_per_round, self.n_test = Path(path), images_per_round, test_images
        pool = range(test_images, needed)
        self._plan = [[test_images + j for j in picked] for picked in balanced_rounds(
            [cell_count(self.y[i, ..., 0]) for i in pool], rounds, images_per_round, seed=0)]

    @property
    def channels(self) -> int:
        return int(self.X.shape[-1])

    @property
    def channel_names(self) -> list[str]:
        return ["nuclear", "membrane"][: self.channels]

    def round_files(self, r: int) -> list[tuple[str, bytes]]:
        files = []
        for i in self._plan[r]:
            buf = io.BytesIO()
            np.savez_compressed(buf, X=self.X[i], y=self.y[i])
            files.append((f"{self.path.stem}_{i:04d}.npz", buf.getvalue()))
        return files

    def test_set(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        if self.n_test == 0:
            return None, None
        return self.X[: self.n_test], self.y[: self.n_test]

    def describe(self) -> str:
        h, w = self.X.shape[1:3]
        return f"{self.images_per_round} images per round from {self.path.name} ({h}×{w}, {self.channels} channels)"
