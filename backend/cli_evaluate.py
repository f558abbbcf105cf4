"""``looplabel evaluate``: score a model on labelled images through the product's predict path."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("evaluate")
@click.argument("data", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--model", "model_spec", default="generalist", show_default=True,
              help="baseline | generalist | a model version id | a .keras file")
@click.option("--mpp", type=float, default=None,
              help="Pixel size of the images (µm/px); default: estimate the scale from the nuclei.")
@click.option("--channels", default=None, help="Nuclear[,membrane] channel indices (default 0,1).")
def evaluate(data: Path, model_spec: str, mpp: float | None, channels: str | None) -> None:
    """Score a model on DATA.npz (X (N,H,W,C), y (N,H,W,2) or (N,H,W) nuclear-only): one JSON line."""
    from backend.errors import UserError

    if mpp is not None and not 0.01 <= mpp <= 100:
        raise click.ClickException(f"--mpp must be a pixel size in µm between 0.01 and 100, got {mpp}")
    try:
        from worker.evaluate import evaluate_predictor, load_labelled_npz, resolve_predictor

        labelled = load_labelled_npz(data, channels)
        if model_spec.isascii() and model_spec.isdigit():
            from backend.cli import _runtime

            rt = _runtime()
            with rt.db.session() as s:
                predictor = resolve_predictor(model_spec, s, rt.store)
        else:
            predictor = resolve_predictor(model_spec)
        result = evaluate_predictor(predictor, labelled, mpp=mpp)
    except UserError as exc:
        raise click.ClickException(exc.message) from None
    result.update(data=str(data), mpp=mpp)
    click.echo(json.dumps(result))
