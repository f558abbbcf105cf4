"""The ``looplabel`` command line: serve, worker, demo, import, db, user, config."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from backend.config import Settings, SettingsError


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


def _runtime():
    from backend.runtime import Runtime

    return Runtime(_settings())


def _fail_on_user_error(func):
    """Turn the errors users can act on into a one-line message and exit status 1."""
    import functools

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from backend.core.imaging import ImageImportError
        from backend.db import DatabaseNotMigratedError
        from backend.errors import UserError
        from backend.storage import StorageError

        try:
            return func(*args, **kwargs)
        except UserError as exc:
            raise click.ClickException(exc.message) from None
        except (ImageImportError, DatabaseNotMigratedError, StorageError) as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper


@click.group()
@click.option("--log-level", default=None, help="DEBUG, INFO, WARNING (default: LOG_LEVEL or INFO)")
def main(log_level: str | None) -> None:
    """LoopLabel: human-in-the-loop annotation for cell segmentation."""
    from backend.observability import configure_logging

    try:
        # JSON lines for machines (containers, log shippers); plain text at a terminal
        configure_logging((log_level or os.environ.get("LOG_LEVEL") or "INFO").upper(),
                          json=not sys.stderr.isatty())
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


@main.command("config")
def config_cmd() -> None:
    """Print the effective settings (secrets masked)."""
    for key, value in _settings().masked().items():
        click.echo(f"{key:<20} {value}")


@main.group("db")
def db_group() -> None:
    """Database schema migrations."""


@db_group.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Migrate the database (SQLite or PostgreSQL) to REVISION (default: head)."""
    from backend.db import Database

    settings = _settings()
    db = Database(settings.database_url)
    before = db.current_revision()
    db.upgrade(revision)
    after = db.current_revision()
    change = "no change" if after == before else f"was {before or 'empty'}"
    click.echo(f"database at revision {after} ({change})")
    db.dispose()


@db_group.command("current")
def db_current() -> None:
    """Show the database's revision and the code's head."""
    from backend.db import Database

    db = Database(_settings().database_url)
    click.echo(f"current: {db.current_revision()}  head: {db.head_revision()}")
    db.dispose()


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--prod", is_flag=True, help="Run under gunicorn (workers/threads from settings).")
@_fail_on_user_error
def serve(host: str, port: int, prod: bool) -> None:
    """Serve the web app (refuses to start on an un-migrated database)."""
    from backend import create_app
    from backend.db import Database

    settings = _settings()
    db = Database(settings.database_url)
    db.require_migrated()
    db.dispose()
    if prod:
        try:
            import gunicorn  # noqa: F401
        except ImportError:
            raise click.ClickException("gunicorn is not installed: pip install 'looplabel[prod]'") from None
        args = [
            sys.executable, "-m", "gunicorn",
            "--bind", f"{host}:{port}",
            "--workers", str(settings.web_workers),
            "--threads", str(settings.web_threads),
            "--access-logfile", "-",
            "backend.wsgi:app",
        ]
        os.execvp(args[0], args)
    app = create_app(settings)
    click.echo(f"LoopLabel on http://{host}:{port}  (database {settings.database_url.split('://')[0]}, "
               f"storage {settings.storage_url.split('://')[0]}, "
               f"queue {'redis' if settings.redis_url else 'in-process'})")
    app.run(host=host, port=port, threaded=True, use_reloader=False)


@main.command()
@click.option("--queue", "queues", multiple=True, type=click.Choice(["default", "gpu"]), default=["default"],
              show_default=True, help="Queue(s) to work on; repeat for several.")
@click.option("--burst", is_flag=True, help="Exit when the queues are empty.")
def worker(queues: tuple[str, ...], burst: bool) -> None:
    """Run an RQ worker (SimpleWorker for the gpu queue so TensorFlow loads once).

    First re-queues the jobs whose worker died mid-job (see backend.services.recovery).
    """
    from rq import SimpleWorker, Worker

    from backend.runtime import process_runtime
    from backend.services.recovery import recover_stale_jobs

    rt = process_runtime()
    if not rt.settings.redis_url:
        raise click.ClickException("REDIS_URL is not set: without Redis, jobs run inside `looplabel serve`")
    rt.db.require_migrated()
    recovered = recover_stale_jobs(rt)
    if recovered:
        click.echo(f"re-queued {len(recovered)} job(s) whose worker had died: "
                   f"{', '.join(str(j) for j in recovered)}", err=True)
    worker_cls = SimpleWorker if "gpu" in queues else Worker
    w = worker_cls([rt.queue.rq_queue(q) for q in queues], connection=rt.queue.connection)
    w.work(burst=burst, with_scheduler=False)


@main.command()
@click.option("--images", default=4, show_default=True, help="Number of synthetic images.")
@click.option("--size", default=1024, show_default=True, help="Image side in pixels.")
@click.option("--no-round", is_flag=True, help="Only import; do not start round 0.")
@click.option("--base-url", default="http://127.0.0.1:5000", show_default=True, help="Where `serve` will listen.")
@_fail_on_user_error
def demo(images: int, size: int, no_round: bool, base_url: str) -> None:
    """Create the demo project, its admin and reviewer, and round 0 (idempotent).

    The images are synthetic tissue imported like a lab's files; round 0 predicts them with the
    classical baseline and cuts crowd crops. Passwords come from DEMO_ADMIN_PASSWORD and
    DEMO_REVIEWER_PASSWORD, or are generated and printed once.
    """
    from backend.services.demo import ensure_demo, ensure_demo_users
    from backend.services.images import ImportLimits
    from backend.services.rounds import current_round, start_round

    rt = _runtime()
    rt.db.require_migrated()
    with rt.db.session() as s:
        project, added = ensure_demo(s, rt.store, n_images=images, size=size,
                                     limits=ImportLimits.from_settings(rt.settings))
        project_id = project.id
        click.echo(f"project {project.name!r} (id {project.id}): {len(project.images)} images, {added} added")
        users = ensure_demo_users(s, {"admin": os.environ.get("DEMO_ADMIN_PASSWORD"),
                                      "reviewer": os.environ.get("DEMO_REVIEWER_PASSWORD")})
        started = False
        if not no_round and current_round(s, project.id) is None:
            start_round(s, rt.queue, project)
            started = True
    if started:
        if hasattr(rt.queue, "join"):
            click.echo("round 0: predicting with the classical baseline and cutting crops ...")
            rt.queue.join()
        else:
            click.echo("round 0 queued: run `looplabel worker --queue default --queue gpu` to process it")
    for username, role, password in users:
        shown = password if password else "(set when it was created; DEMO_%s_PASSWORD resets it)" % role.upper()
        click.echo(f"{role:<9} {username} / {shown}")
    click.echo(f"console:           {base_url}/login")
    click.echo(f"annotate a crop:   {base_url}/annotate/{project_id}?worker=demo-worker")
    click.echo(f"as a crowd site:   {base_url}/annotate/example-host")


@main.command("import")
@click.argument("project")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--channels", default=None, help="Which file channels feed the project's, e.g. 0,2 or DAPI,CD45.")
@_fail_on_user_error
def import_cmd(project: str, files: tuple[Path, ...], channels: str | None) -> None:
    """Import image FILES (TIFF/OME-TIFF/NPZ/PNG) into PROJECT (id or name). All or nothing."""
    from backend.services.images import ImportLimits, Upload, import_images, parse_channel_map
    from backend.services.projects import find_project

    rt = _runtime()
    rt.db.require_migrated()
    uploads = [Upload(f.name, f.read_bytes()) for f in files]
    with rt.db.session() as s:
        proj = find_project(s, project)
        created = import_images(s, rt.store, proj, uploads, ImportLimits.from_settings(rt.settings),
                                parse_channel_map(channels))
        for image in created:
            click.echo(f"imported {image.name} as image {image.id} ({image.n_channels}×{image.height}×{image.width} {image.dtype})")


@main.group("user")
def user_group() -> None:
    """Reviewer and admin accounts."""


@user_group.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(["admin", "reviewer"]), required=True)
@click.option("--password", default=None, help="Default: generated and printed once.")
@_fail_on_user_error
def user_add(name: str, role: str, password: str | None) -> None:
    """Add a user NAME with a role."""
    from backend.services.users import create_user

    rt = _runtime()
    rt.db.require_migrated()
    with rt.db.session() as s:
        user, pw = create_user(s, name, role, password)
    click.echo(f"user {user.username} ({user.role}) created" + ("" if password else f"; password: {pw}"))


@main.group("round")
def round_group() -> None:
    """Rounds of the loop: predict → crop → crowd → stitch → review."""


@round_group.command("start")
@click.argument("project")
@click.option("--wait", is_flag=True, help="With the in-process queue: wait until prediction and cropping finish.")
@_fail_on_user_error
def round_start(project: str, wait: bool) -> None:
    """Start the next round of PROJECT: predict every image not yet approved, crop, open tasks."""
    from backend.services.projects import find_project
    from backend.services.rounds import start_round

    rt = _runtime()
    rt.db.require_migrated()
    with rt.db.session() as s:
        rnd = start_round(s, rt.queue, find_project(s, project))
        number = rnd.number
    click.echo(f"round {number} started")
    if wait and hasattr(rt.queue, "join"):
        rt.queue.join()
        click.echo("prediction and cropping finished")


@main.command()
@click.argument("project")
@click.option("--steps", type=int, default=None, help="Training steps (default: TRAIN_STEPS).")
@click.option("--backbone", type=click.Choice(["resnet50", "small"]), default=None,
              help="Default: TRAIN_BACKBONE.")
@click.option("--wait", is_flag=True, help="With the in-process queue: wait for the training to finish.")
@_fail_on_user_error
def train(project: str, steps: int | None, backbone: str | None, wait: bool) -> None:
    """Build a dataset from PROJECT's approved images and train a new model version."""
    from backend.services.projects import find_project
    from backend.services.registry import start_retraining

    rt = _runtime()
    rt.db.require_migrated()
    with rt.db.session() as s:
        job = start_retraining(s, rt.queue, find_project(s, project), steps=steps or rt.settings.train_steps,
                               backbone=backbone or rt.settings.train_backbone, reason="cli")
        job_id = job.id
    click.echo(f"retraining queued (job {job_id})")
    if wait and hasattr(rt.queue, "join"):
        rt.queue.join()
        from backend.models import Job

        with rt.db.session() as s:
            for row in s.query(Job).filter(Job.id >= job_id).order_by(Job.id):
                click.echo(f"{row.kind}: {row.status} {row.message}")


@main.group("model")
def model_group() -> None:
    """Model versions: list, promote, roll back."""


@model_group.command("list")
@click.argument("project")
@_fail_on_user_error
def model_list(project: str) -> None:
    from backend.models import ModelVersion
    from backend.services.projects import find_project

    rt = _runtime()
    with rt.db.session() as s:
        proj = find_project(s, project)
        for mv in s.query(ModelVersion).filter_by(project_id=proj.id).order_by(ModelVersion.version):
            f1 = (mv.metrics or {}).get("f1")
            click.echo(f"v{mv.version} (id {mv.id}) {mv.status:<9} {mv.backbone:<8} "
                       f"F1 {f1:.3f}" if f1 is not None else f"v{mv.version} (id {mv.id}) {mv.status}")


@model_group.command("promote")
@click.argument("model_version_id", type=int)
@_fail_on_user_error
def model_promote(model_version_id: int) -> None:
    """Promote a ready model version: the next round predicts with it."""
    from backend.services.registry import promote

    rt = _runtime()
    with rt.db.session() as s:
        mv = promote(s, model_version_id)
        click.echo(f"model v{mv.version} promoted")


@model_group.command("rollback")
@click.argument("project")
@_fail_on_user_error
def model_rollback(project: str) -> None:
    """Retire the promoted version and promote the previous one (or fall back to the baseline)."""
    from backend.services.projects import find_project
    from backend.services.registry import roll_back

    rt = _runtime()
    with rt.db.session() as s:
        previous = roll_back(s, find_project(s, project).id)
        click.echo(f"model v{previous.version} promoted again" if previous else "back to the classical baseline")


@main.command()
@click.option("--once", is_flag=True, help="Check every project once and exit.")
@click.option("--interval", default=300.0, show_default=True, help="Seconds between checks.")
def scheduler(once: bool, interval: float) -> None:
    """Start retraining rounds when projects are due (N new approved images, or every T hours)."""
    from worker.scheduler import run_forever, run_once

    rt = _runtime()
    rt.db.require_migrated()
    if once:
        for started in run_once(rt):
            click.echo(f"{started['project']}: retraining queued (job {started['job_id']}): {started['reason']}")
        if hasattr(rt.queue, "join"):
            rt.queue.join()
        return
    run_forever(rt, interval)


@main.command()
@click.option("--images", default=4, show_default=True, help="New synthetic images per round.")
@click.option("--size", default=512, show_default=True, help="Image side in pixels.")
@click.option("--channels", default=None,
              help="Synthetic images: how many channels (default 2: DAPI, membrane, lineage...). "
                   "With --data: the nuclear[,membrane] channel indices (default 0,1).")
@click.option("--data", type=click.Path(path_type=Path, exists=True, dir_okay=False), default=None,
              help="A lab's labelled NPZ (X (N,H,W,C), y (N,H,W,2)) instead of synthetic images: the first "
                   "--test-images are held out, the rest go to the rounds.")
@click.option("--test-images", default=2, show_default=True, help="Held-out images of the learning curve.")
@click.option("--rounds", default=3, show_default=True)
@click.option("--annotators-per-crop", default=2, show_default=True)
@click.option("--profiles", default="careful*2,hasty,spammer", show_default=True,
              help="Simulated annotators: careful, hasty, spammer (NAME*N repeats).")
@click.option("--train-steps", default=200, show_default=True)
@click.option("--truth-images", type=int, default=None,
              help="Upload only the first K images of each round with their truth (default: all).")
@click.option("--steps-per-image", default=0, show_default=True,
              help="Train this many steps per approved image instead of --train-steps (0: off).")
@click.option("--backbone", type=click.Choice(["small", "resnet50"]), default="small", show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--promotion", type=click.Choice(["rule", "always"]), default="rule", show_default=True,
              help="rule: the project's auto-promotion; always: the admin promotes every new version.")
@click.option("--out", "out_dir", default="simulation", show_default=True, type=click.Path(path_type=Path),
              help="Where report.json and the learning curves go.")
def simulate(images, size, channels, data, test_images, rounds, annotators_per_crop, profiles, train_steps,
             truth_images, steps_per_image, backbone, seed, promotion, out_dir):
    """Run the whole loop unattended: simulated crowd and reviewer, training, promotion, report."""
    from worker.simulate import SimulationConfig, SimulationError, run_simulation

    rt = _runtime()
    rt.db.require_migrated()
    n_channels, data_channels = 2, None
    if data is not None:
        data_channels = channels
    elif channels is not None:
        if not channels.isascii() or not channels.isdigit():
            raise click.ClickException(f"--channels must be a number of channels without --data, got {channels!r}")
        n_channels = int(channels)
    try:
        config = SimulationConfig(images=images, size=size, channels=n_channels, data=data,
                                  data_channels=data_channels, test_images=test_images, truth_images=truth_images,
                                  rounds=rounds,
                                  annotators_per_crop=annotators_per_crop, profiles=profiles,
                                  train_steps=train_steps, steps_per_image=steps_per_image, backbone=backbone, seed=seed, promotion=promotion,
                                  out_dir=out_dir)
        report = run_simulation(rt, config, progress=click.echo)
    except SimulationError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"report: {out_dir / 'report.json'}; held-out F1 by round: {report['f1_by_round']}, "
               f"corrections per crop by round: {report.get('corrections_per_crop_by_round')}")


def _register_commands() -> None:
    from backend.cli_evaluate import evaluate

    main.add_command(evaluate)


_register_commands()


if __name__ == "__main__":  # pragma: no cover
    main()
