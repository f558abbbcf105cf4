"""Where a simulation's images come from: the synthetic generator, or a lab's labelled NPZ.

With ``looplabel simulate --data FILE.npz`` the whole loop runs on a lab's own labelled images
(their ground truth is what a careful simulated annotator aims at), so a lab can estimate what
the loop will cost before paying a crowd. The first ``test_images`` images are the held-out
yardstick no round sees; the others are uploaded ``images`` per round.

Rounds are balanced by difficulty (:func:`balanced_rounds`): images differ far more than a
round's model gain. Of sixteen 512² synthetic images, the shipped generalist left 99 cells to fix
(both features) on one and 560 on another; dealt by cell count (one image of each stratum per
round), the rounds still held 813 to 1,190 of the generalist's errors, and round 1's
corrections rose while its model was better. Each image's difficulty is what the two predictors
round 0 chooses between (the generalist and the classical baseline) get wrong on it against the
truth — measured once, before any round, by predictors no round trains — and the rounds are
dealt so that their totals of both are as even as the images allow (on those sixteen, the
generalist's within 5 %). Balancing one predictor's errors is not enough: on 18 images of
another generator, dealt by the generalist's errors, the baseline that predicted rounds 0 and 1
made 78 errors per crop on round 0's images and 108 on round 1's.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np


class SimulationDataError(ValueError):
    """The data file cannot feed the simulation (the message says why)."""


def balanced_rounds(difficulty: list, rounds: int, per_round: int, seed: int) -> list[list[int]]:
    """Deal ``rounds * per_round`` images to the rounds so that the rounds' total difficulty is as
    even as the images allow.

    ``difficulty`` holds one number per image, or one tuple per image (several measures, e.g. the
    errors of two predictors; each is scaled by its mean so that they weigh alike). The hardest
    image first (by the sum of its scaled measures), each goes to the round with room and the least
    difficulty so far; then swaps of two images between two rounds are made while one narrows the
    totals (their sum of squares falls). ``seed`` shuffles which round gets which group. Returns,
    per round, the indices of its images into ``difficulty``, in increasing order.
    """
    if len(difficulty) != rounds * per_round:
        raise ValueError(f"{len(difficulty)} images cannot fill {rounds} rounds of {per_round}")
    d = np.asarray(difficulty, dtype=np.float64).reshape(len(difficulty), -1)
    d = d / np.where(d.mean(axis=0) > 0, d.mean(axis=0), 1.0)
    groups: list[list[int]] = [[] for _ in range(rounds)]
    totals = np.zeros((rounds, d.shape[1]))
    for i in sorted(range(len(d)), key=lambda i: (-d[i].sum(), i)):
        g = min((g for g in range(rounds) if len(groups[g]) < per_round), key=lambda g: (totals[g].sum(), g))
        groups[g].append(i)
        totals[g] += d[i]
    while True:  # the best improving swap, until none improves
        best = (0.0, None)
        for a in range(rounds):
            for b in range(a + 1, rounds):
                gap = totals[a] - totals[b]
                for ia, i in enumerate(groups[a]):
                    for jb, j in enumerate(groups[b]):
                        delta = d[i] - d[j]  # moving i to b and j to a
                        change = float(2 * delta @ (delta - gap))  # change of |totals[a]|² + |totals[b]|²
                        if change < best[0] - 1e-9:
                            best = (change, (a, b, ia, jb))
        if best[1] is None:
            break
        a, b, ia, jb = best[1]
        i, j = groups[a][ia], groups[b][jb]
        groups[a][ia], groups[b][jb] = j, i
        totals[a] += d[j] - d[i]
        totals[b] += d[i] - d[j]
    order = np.random.default_rng(seed).permutation(rounds)
    return [sorted(groups[int(g)]) for g in order]


def reference_predictors() -> list:
    """The predictors whose errors measure an image's difficulty: the two round 0 chooses between,
    the shipped generalist (when installed) and the classical baseline; no round trains either."""
    from worker.predict import BASELINE, generalist_predictor

    try:
        return [generalist_predictor(), BASELINE]
    except FileNotFoundError:
        return [BASELINE]


def difficulty(predictors: list, image: np.ndarray, truth: np.ndarray) -> tuple[int, ...]:
    """Cells to fix (error units, both features) of each predictor on a (C, H, W) image against
    its (2, H, W) truth, through the product's predict path."""
    from backend.core.crowd_simulation import cells_to_fix
    from worker.predict import predict_image

    image = np.asarray(image, np.float32)
    out = []
    for predictor in predictors:
        labels = predict_image(predictor, image, membrane_channel=1 if image.shape[0] > 1 else None)
        out.append(cells_to_fix(labels, truth))
    return tuple(out)


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

        if self._plan is None:  # every image of the run is drawn once to measure its difficulty
            references = reference_predictors()
            tissues = (synthetic_tissue(self.size, self.size, n_channels=self.channels, seed=self._seed(i))
                       for i in range(self.rounds * self.images_per_round))
            scores = [difficulty(references, t.image, t.labels) for t in tissues]
            self._plan = balanced_rounds(scores, self.rounds, self.images_per_round, self.seed)
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
        references = reference_predictors()
        scores = [difficulty(references, np.moveaxis(self.X[i], -1, 0), np.moveaxis(self.y[i], -1, 0))
                  for i in range(test_images, needed)]
        self._plan = [[test_images + j for j in picked]
                      for picked in balanced_rounds(scores, rounds, images_per_round, seed=0)]

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
