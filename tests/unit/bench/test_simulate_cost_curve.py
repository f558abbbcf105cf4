"""bench/simulate.py's cost curve: model F1 placed at the crowd crops spent before that model predicted."""

import re

from bench.simulate import cost_curve_svg


def test_each_round_s_f1_sits_at_the_crops_the_rounds_before_it_spent():
    results = {
        "all": {"crowd_crops_by_round": [10, 10, 8], "f1_by_round": [0.7, 0.8, 0.85], "f1_after_last_training": 0.9},
        "budget": {"crowd_crops_by_round": [5, 4, 5], "f1_by_round": [0.7, 0.75, 0.8], "f1_after_last_training": 0.82},
    }
    desc = re.search(r"<desc[^>]*>(.*)</desc>", cost_curve_svg(results)).group(1)
    assert desc == ("all: 0: 0.7; 10: 0.8; 20: 0.85; 28: 0.9. "
                    "budget: 0: 0.7; 5: 0.75; 9: 0.8; 14: 0.82")
