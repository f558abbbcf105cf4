"""Round 0: the generalist or the baseline, whichever scores better on the project's labelled images."""

from __future__ import annotations

import pytest

from backend.services.demo import synthetic_npz
from backend.services.images import Upload, import_images
from backend.services.projects import create_project
from worker.predict import BASELINE
from worker.round_zero import choose_round_zero, round_zero_predictor

pytestmark = pytest.mark.slow


def test_with_ground_truth_the_better_predictor_is_chosen_and_its_figures_kept(runtime):
    with runtime.db.session() as s:
        project = create_project(s, "round zero", ["DAPI", "membrane"])
        import_images(s, runtime.store, project, [Upload(f"gt{i}.npz", synthetic_npz(192, 192, 2, seed=70 + i))
                                                   for i in range(2)])
        choice = choose_round_zero(s, runtime.store, project)
        assert choice["measured_on"] == "ground truth" and choice["images"] == 2
        f1 = choice["f1"]
        better = "generalist" if f1["generalist"]["headline"] >= f1["baseline"]["headline"] else "baseline"
        assert choice["predictor"] == better
        assert 0 < f1["baseline"]["whole_cell"] <= 1 and 0 < f1["baseline"]["nuclear"] <= 1
        assert project.predictor_choice == choice
        assert round_zero_predictor(s, runtime.store, project).name == better


def test_without_labelled_images_the_generalist_predicts_and_a_forced_choice_is_kept(runtime):
    with runtime.db.session() as s:
        project = create_project(s, "no labels", ["DAPI", "membrane"])
        choice = choose_round_zero(s, runtime.store, project)
        assert (choice["predictor"], choice["measured_on"]) == ("generalist", "none")
        project.predictor_choice = {"predictor": "baseline", "measured_on": "admin"}
        assert round_zero_predictor(s, runtime.store, project) is BASELINE
