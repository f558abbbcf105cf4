"""Bench: the whole loop with a simulated crowd, big enough to show learning on this CPU.

Runs ``worker.simulate.run_simulation`` on a fresh instance (a temporary folder; the database is
``DATABASE_URL`` when set, e.g. PostgreSQL, otherwise SQLite in that folder; jobs go to RQ when
``REDIS_URL`` is set, otherwise the in-process queue) and prints a table per round, then, as the
last line, one JSON object with ``f1_by_round`` (held-out whole-cell F1, through the product's
predict path, of what predicted each round: round 0 is the shipped generalist or the classical
baseline, whichever scored better on the project's labelled images) and
``corrections_per_crop_by_round`` (changed cells per crop by honest annotators), and
``corrections_per_100_cells_by_round`` (the same changed cells per 100 cells of those crops'
truth: a round of denser images needs more fixes at the same error rate),
``prediction_errors_per_crop_by_round`` (the prediction's error units against the truth per crop:
what an annotator who fixed everything would fix, whoever took the crop) and
``corrections_by_profile_by_round``, plus the run's size and minutes. The rounds' images are
dealt to even difficulty: what the round-0 reference gets wrong on them
(:func:`worker.simulation_data.balanced_rounds`). ``--data FILE.npz`` runs
the loop on a lab's labelled images instead.

Default size (about 30 min on the 2-core CPU): 4 rounds of 4 new 512x512 images (2 channels;
4 crops of 270 px each), 4 annotators (careful x2, hasty, spammer), 2 per crop, small backbone,
75 training steps per approved image (300, 600, 900, 1,200 steps: at a fixed length each image
would be seen less every round), each fine-tuned from what predicts (the generalist, then the
promoted version) on all images approved so far; the product's rule promotes a version only when
it beats what it would replace on the held-out approved images (``--promotion always``: the
admin promotes every version).

Usage: ``python bench/simulate.py [--rounds 4] [--images 4] [--size 512] [--steps-per-image 75] ...``

Crowd policies (``--policy all,budget,confident-skip`` runs each on fresh instances with the same
seeds and images, one after the other): ``budget`` sends at most ``--budget`` image crops per round
to the crowd (default: half of a round's image crops), the most uncertain first;
``confident-skip`` skips crops whose uncertainty is under ``--skip-below``. Per policy it prints
``f1_by_round``, ``crowd_crops_by_round``, ``approved_label_f1`` (the approved labels against the
truth) and ``uncertainty_vs_corrections`` (Spearman correlation of a crop's expected fixes with the
cells honest annotators changed in it); the last JSON line holds them all, and, when ``all`` and
another policy ran, whether that policy reached ``all``'s last-round F1 within 0.01 on at most
half its crowd crops with approved labels at least 0.97 × as good. With ``--out DIR`` it also
writes ``DIR/cost_curve.svg``: model F1 against crowd crops spent so far, one line per policy.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=4, help="new synthetic images per round")
    parser.add_argument("--size", type=int, default=512, help="image side, px")
    parser.add_argument("--channels", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--annotators-per-crop", type=int, default=2)
    parser.add_argument("--profiles", default="careful*2,hasty,spammer")
    parser.add_argument("--steps-per-image", type=int, default=75,
                        help="training steps per approved image (300, 600, 900, ... for 4 images a round)")
    parser.add_argument("--steps", type=int, default=None,
                        help="a fixed number of training steps per round instead of --steps-per-image")
    parser.add_argument("--backbone", default="small", choices=["small", "resnet50"])
    parser.add_argument("--promotion", default="rule", choices=["always", "rule"])
    parser.add_argument("--data", type=Path, default=None,
                        help="a labelled NPZ (X (N,H,W,C), y (N,H,W,2)) instead of synthetic images")
    parser.add_argument("--data-channels", default=None, help="nuclear[,membrane] channel indices of --data")
    parser.add_argument("--test-images", type=int, default=8,
                        help="held-out images no round sees, the learning curve's yardstick (with 2, the "
                             "generalist scored 0.899, with 8 0.913: a round's gain is a few thousandths)")
    parser.add_argument("--truth-images", type=int, default=None,
                        help="upload only the first K images of each round with their truth (default: all); "
                             "the simulated crowd still aims at every image's truth")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="report folder (default: in the temporary instance)")
    parser.add_argument("--policy", default="all",
                        help="crowd policy, or several to compare: all, budget, confident-skip (comma-separated)")
    parser.add_argument("--budget", type=int, default=None,
                        help="budget policy: crowd crops per round (default: half a round's image crops)")
    parser.add_argument("--skip-below", type=float, default=None,
                        help="confident-skip policy: crop uncertainty under which a crop skips the crowd")
    args = parser.parse_args(argv)
    policies = [p.strip() for p in args.policy.split(",") if p.strip()]
    if len(policies) == 1:
        return run_one(args, policies[0])
    results = {name: run_one(args, name, quiet_json=True) for name in policies}
    figures = {"policies": results, **compare_policies(results)}
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "cost_curve.svg").write_text(cost_curve_svg(results))
    print(json.dumps(figures))
    return figures


def policy_of(args, name: str) -> dict:
    """The policy ``name`` with the bench's budget or threshold."""
    from backend.core.tiling import crop_plan
    from backend.services.crowd_policy import DEFAULT_SKIP_BELOW
    from backend.services.stitching import gold_indices

    if name == "budget":
        budget = args.budget
        if budget is None and args.data is None:
            n = len(crop_plan((args.size, args.size), 270, 27))
            budget = args.images * (n - len(gold_indices(n, 0.25, 0))) // 2
        if budget is None:
            raise SystemExit("--policy budget with --data needs --budget")
        return {"policy": "budget", "budget": int(budget)}
    if name == "confident-skip":
        return {"policy": name, "skip_below": DEFAULT_SKIP_BELOW if args.skip_below is None else args.skip_below}
    return {"policy": name}


def cost_curve_svg(results: dict) -> str:
    """Model F1 against crowd crops spent so far, one line per policy: the predictor of round 0 at 0
    crops, each later round's predictor at what the rounds before it spent, the last training at the
    total."""
    from backend.services.line_chart import Series, line_chart_svg

    series = []
    for name, r in results.items():
        spent = np.concatenate([[0], np.cumsum(r["crowd_crops_by_round"])])
        f1s = [*r["f1_by_round"], r["f1_after_last_training"]]
        series.append(Series(name, [(float(x), f1) for x, f1 in zip(spent, f1s)]))
    return line_chart_svg(series, title="Cost curve: model F1 against crowd crops spent",
                          x_label="crowd crops so far", y_label="F1 (held-out, whole-cell)",
                          chart_id="sim-cost-curve", y_range=(0.0, 1.0))


def compare_policies(results: dict) -> dict:
    """Did a cheaper policy keep the loop's quality? (against ``all``, when it ran)"""
    if "all" not in results:
        return {}
    base = results["all"]
    base_f1, base_crops = base["f1_by_round"][-1], sum(base["crowd_crops_by_round"])
    out = {}
    for name, r in results.items():
        if name == "all":
            continue
        crops = sum(r["crowd_crops_by_round"])
        out[name] = {
            "crowd_crops_share": round(crops / base_crops, 3) if base_crops else None,
            "last_f1_gap": round(base_f1 - r["f1_by_round"][-1], 4),
            "approved_label_f1_ratio": (round(r["approved_label_f1"] / base["approved_label_f1"], 4)
                                        if base["approved_label_f1"] else None),
        }
        out[name]["goal_met"] = bool(out[name]["crowd_crops_share"] is not None
                                     and out[name]["crowd_crops_share"] <= 0.5
                                     and out[name]["last_f1_gap"] <= 0.01
                                     and (out[name]["approved_label_f1_ratio"] or 0) >= 0.97)
    return {"versus_all": out}


def run_one(args, policy_name: str, quiet_json: bool = False) -> dict:

    from backend.config import Settings
    from backend.db import Database
    from backend.runtime import Runtime
    from worker.simulate import SimulationConfig, run_simulation

    instance = Path(tempfile.mkdtemp(prefix="looplabel-bench-simulate-"))
    env = {"LOOPLABEL_INSTANCE": str(instance), "SECRET_KEY": "bench",
           "STORAGE_URL": f"file://{instance / 'storage'}"}
    for name in ("DATABASE_URL", "REDIS_URL", "QUEUE_PREFIX"):
        if os.environ.get(name):
            env[name] = os.environ[name]
    if env.get("REDIS_URL") and not env.get("QUEUE_PREFIX"):
        env["QUEUE_PREFIX"] = f"bench-{instance.name}-"
    settings = Settings.from_env(env)
    Database(settings.database_url).upgrade()
    runtime = Runtime(settings)
    config = SimulationConfig(images=args.images, size=args.size, channels=args.channels, rounds=args.rounds,
                              data=args.data, data_channels=args.data_channels,
                              annotators_per_crop=args.annotators_per_crop, profiles=args.profiles,
                              train_steps=args.steps or 1,
                              steps_per_image=0 if args.steps else args.steps_per_image,
                              backbone=args.backbone, seed=args.seed,
                              test_images=args.test_images, truth_images=args.truth_images,
                              promotion=args.promotion,
                              policy=policy_of(args, policy_name),
                              out_dir=(args.out / policy_name if args.out else instance / "report"))
    started = time.perf_counter()
    try:
        report = run_simulation(runtime, config, progress=lambda line: print(
            f"[{time.perf_counter() - started:7.1f} s] {line}", flush=True))
    finally:
        runtime.close()

    print()
    print(f"policy: {report['policy']}")
    print(f"{'round':>5} {'predictor':>12} {'held-out F1':>11} {'cells/crop':>10} {'per 100':>7} {'px/crop':>9} "
          f"{'median s/crop':>13} {'sent back':>9} {'reviewer fixes':>14} {'new model':>9} {'promoted':>8}")
    for r in report["rounds"]:
        c, t = r["corrections_per_crop"], r["training"]
        print(f"{r['round']:>5} {r['predictor'].replace('model id ', 'model '):>12} {_f(r['f1_heldout']):>11} "
              f"{_f(c['changed_cells'], 1):>10} {_f(c.get('per_100_cells'), 2):>7} {_f(c['changed_pixels'], 0):>9} "
              f"{_f(r['median_seconds_per_crop'], 0):>13} "
              f"{r['review']['rejected_crops']:>9} {r['review']['cells_fixed']:>14} {'v' + str(t['version']):>9} "
              f"{t['promoted_by'] or 'no':>8}")
    print(f"held-out F1 after the last training: {_f(report['f1_after_last_training'])}")
    print(f"gold accuracy by profile: {report['gold_accuracy_by_profile']}; gold gain by profile: "
          f"{report['gold_gain_by_profile']}; spammer caught: {report['spammer_caught']}")
    steps = [r["training"]["steps"] for r in report["rounds"]]
    print(f"{args.rounds} rounds x {args.images} images of {args.size}x{args.size} px, steps by round {steps} "
          f"({args.backbone}), {report['minutes']} min; report: {config.out_dir}")
    f1s, corrections = report["f1_by_round"], report["corrections_per_crop_by_round"]
    figures = {
        "f1_by_round": f1s,
        "corrections_per_crop_by_round": corrections,
        "changed_pixels_per_crop_by_round": report["changed_pixels_per_crop_by_round"],
        "corrections_per_100_cells_by_round": report["corrections_per_100_cells_by_round"],
        "corrections_by_profile_by_round": [r["corrections_per_crop"]["by_profile"] for r in report["rounds"]],
        "prediction_errors_per_crop_by_round": report["prediction_errors_per_crop_by_round"],
        "median_seconds_per_crop_by_round": report["median_seconds_per_crop_by_round"],
        "f1_after_last_training": report["f1_after_last_training"],
        "nuclear_f1_by_round": report["nuclear_f1_by_round"],
        "heldout_cells_to_fix_by_round": report["heldout_cells_to_fix_by_round"],
        "f1_rises_every_round": bool(len(f1s) > 1 and None not in f1s
                                     and all(b > a for a, b in zip(f1s, f1s[1:]))),
        "f1_never_falls": bool(len(f1s) > 1 and None not in f1s and all(b >= a for a, b in zip(f1s, f1s[1:]))),
        "corrections_fall_every_round": bool(len(corrections) > 1 and None not in corrections
                                             and all(b < a for a, b in zip(corrections, corrections[1:]))),
        "round_zero_predictor": report["round_zero_predictor"],
        "policy": report["policy"],
        "crowd_crops_by_round": report["crowd_crops_by_round"],
        "model_crops_by_round": report["model_crops_by_round"],
        "approved_label_f1": report["approved_label_f1"],
        "approved_label_f1_by_round": report["approved_label_f1_by_round"],
        "approved_label_nuclear_f1_by_round": report["approved_label_nuclear_f1_by_round"],
        "uncertainty_vs_corrections": report["uncertainty_vs_corrections"],
        "data": str(args.data) if args.data else "synthetic",
        "truth_images_per_round": args.truth_images,
        "spammer_caught": report["spammer_caught"],
        "rounds": args.rounds, "images_per_round": args.images, "size": args.size, "steps_by_round": steps,
        "backbone": args.backbone, "promotion": args.promotion, "minutes": report["minutes"],
        "database": settings.database_url.split(":", 1)[0], "queue": "rq" if settings.redis_url else "inline",
    }
    if not quiet_json:
        print(json.dumps(figures))
    return figures


def _f(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


if __name__ == "__main__":
    main()
