"""Observability of the web tier: JSON logs with a request id, Prometheus metrics, gzip of JSON.

* :func:`configure_logging` makes every log record one JSON object per line (``time``, ``level``,
  ``logger``, ``message``, ``request_id`` and any ``extra=`` fields); the CLI and the gunicorn
  hooks call it.
* :func:`init_observability` registers the request hooks on an app: a request id (from a valid
  incoming ``X-Request-ID`` or generated, echoed in the response), one access log line per
  request (``method``, ``path``, ``status``, ``duration_ms``), the request latency histogram by
  route, and gzip (or deflate) of JSON bodies over :data:`COMPRESS_MIN_BYTES` when the client
  accepts it. Binary array responses (``application/octet-stream``, already deflated) are never
  touched.
* :func:`render_metrics` is the Prometheus exposition for ``GET /metrics``: the request metrics
  of this process (or of every gunicorn worker when ``PROMETHEUS_MULTIPROC_DIR`` is set), plus
  figures read at scrape time from the database and the queue: jobs by kind/status, finished job
  durations, queue depth, active crowd leases.

``PROMETHEUS_MULTIPROC_DIR`` must be set in the environment *before* the process starts (the
client library reads it on import), point at an empty directory writable by every worker, and
be emptied when the server starts; ``deploy/gunicorn.conf.py`` does that and marks dead workers.
"""

from __future__ import annotations

import gzip
import json as jsonlib
import logging
import os
import re
import sys
import time
import uuid
import zlib
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Iterator, TextIO

from flask import Flask, Response, g, has_request_context, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.metrics_core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

if TYPE_CHECKING:  # pragma: no cover
    from backend.runtime import Runtime

REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}")
COMPRESS_MIN_BYTES = 1024
COMPRESS_LEVEL = 6
ACCESS_LOGGER = "looplabel.access"
# Requests from probes and scrapers: logged at DEBUG unless they fail, so they do not flood logs.
QUIET_PATHS = frozenset({"/livez", "/readyz", "/healthz", "/metrics"})
REQUEST_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
JOB_BUCKETS_S = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# libraries whose INFO lines are set-up chatter (alembic: its plugins and migration context, on
# every command that checks the schema); shown when the level is DEBUG
CHATTY_LOGGERS = ("alembic",)
# terminal colour codes (werkzeug colours its request lines): no use inside a JSON line
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

log = logging.getLogger(__name__)
access_log = logging.getLogger(ACCESS_LOGGER)

# --- logging ------------------------------------------------------------------------------------
# Attributes every LogRecord has; anything else on a record came from ``extra=`` and is logged.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "request_id", "taskName",
}


def current_request_id() -> str | None:
    """The id of the request being handled by this thread, or None outside a request."""
    if has_request_context():
        return g.get("request_id")
    return None


class RequestIdFilter(logging.Filter):
    """Put ``request_id`` on every record that passes (None outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = current_request_id()
        return True


class JsonLogFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601, ms), level, logger, message, request_id,
    then the record's ``extra=`` fields (e.g. method, path, status, duration_ms), and
    ``exception`` with the formatted traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, tz=timezone.utc)
        entry = {
            "time": stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": ANSI_ESCAPE.sub("", record.getMessage()),
            "request_id": getattr(record, "request_id", None),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return jsonlib.dumps(entry, default=str, ensure_ascii=False)


def configure_logging(level: str = "INFO", json: bool = True, stream: TextIO | None = None) -> logging.Handler:
    """Send every log record of this process to ``stream`` as JSON lines (or plain text).

    Replaces the root logger's handlers, so calling it twice is harmless. The loggers of
    :data:`CHATTY_LOGGERS` log warnings only, unless ``level`` is DEBUG. (Under gunicorn,
    ``deploy/gunicorn.conf.py`` installs the same formatter through ``logconfig_dict``.)

    Parameters
    ----------
    level : str
        ``DEBUG``, ``INFO``, ``WARNING``, ``ERROR`` or ``CRITICAL`` (any case), e.g. ``LOG_LEVEL``.
    json : bool
        True: one JSON object per line (see :class:`JsonLogFormatter`). False: human-readable
        ``time level logger [request_id]: message`` lines for a terminal.
    stream : text stream, optional
        Where to write; default ``sys.stderr``.

    Returns
    -------
    logging.Handler
        The installed handler (tests attach to it or inspect its stream).

    Raises
    ------
    ValueError
        ``level`` is not a logging level name; the message lists the valid ones.
    """
    name = str(level).strip().upper()
    numeric = logging.getLevelName(name)
    if not isinstance(numeric, int):
        raise ValueError(f"LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL; got {level!r}")
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    if json:
        handler.setFormatter(JsonLogFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"))
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    for chatty in CHATTY_LOGGERS:
        logging.getLogger(chatty).setLevel(logging.NOTSET if numeric <= logging.DEBUG else max(numeric, logging.WARNING))
    return handler


# --- request hooks --------------------------------------------------------------------------------
_REQUEST_REGISTRY = CollectorRegistry(auto_describe=True)
REQUEST_DURATION = Histogram(
    "looplabel_http_request_duration_seconds",
    "Time from the first request hook to the response, by route template and method.",
    ["method", "route"],
    buckets=REQUEST_BUCKETS_S,
    registry=_REQUEST_REGISTRY,
)
REQUESTS = Counter(
    "looplabel_http_requests",
    "Responses by route template, method and status code.",
    ["method", "route", "status"],
    registry=_REQUEST_REGISTRY,
)
ProcessCollector(registry=_REQUEST_REGISTRY)  # process_* figures; single-process mode only


def valid_request_id(value: str | None) -> str | None:
    """``value`` when it is a usable request id (1–64 of ``[A-Za-z0-9._-]``), else None."""
    if value and REQUEST_ID_PATTERN.fullmatch(value):
        return value
    return None


def _start_request() -> None:
    if "request_id" not in g:
        g.request_id = valid_request_id(request.headers.get(REQUEST_ID_HEADER)) or uuid.uuid4().hex
        g.request_started = time.perf_counter()


def _finish_request(response: Response) -> Response:
    _start_request()  # another before_request hook may have failed before ours ran
    response.headers[REQUEST_ID_HEADER] = g.request_id
    response = compress_json_response(response, request.accept_encodings)
    elapsed = time.perf_counter() - g.request_started
    route = request.url_rule.rule if request.url_rule is not None else "<unmatched>"
    REQUEST_DURATION.labels(request.method, route).observe(elapsed)
    REQUESTS.labels(request.method, route, str(response.status_code)).inc()
    quiet = request.path in QUIET_PATHS and response.status_code < 400
    access_log.log(
        logging.DEBUG if quiet else logging.INFO,
        "%s %s %s %.1fms", request.method, request.path, response.status_code, elapsed * 1000,
        extra={"method": request.method, "path": request.path, "status": response.status_code,
               "duration_ms": round(elapsed * 1000, 3)},
    )
    return response


def init_observability(app: Flask) -> None:
    """Register the request id, access log, latency metrics and JSON compression on ``app``.

    The hooks go first among the app's ``before_request`` functions (so the id exists before
    any other hook can fail) and last among the ``after_request`` functions (so the body they
    compress is final). Calling it twice on one app is a no-op.
    """
    if app.extensions.get("looplabel.observability"):
        return
    app.extensions["looplabel.observability"] = True
    app.before_request_funcs.setdefault(None, []).insert(0, _start_request)
    # Flask runs after_request functions in reverse order of registration: index 0 runs last.
    app.after_request_funcs.setdefault(None, []).insert(0, _finish_request)


def compress_json_response(response: Response, accepted) -> Response:
    """Gzip (or deflate) a JSON body over :data:`COMPRESS_MIN_BYTES` if the client accepts it.

    Parameters
    ----------
    response : flask.Response
        Left unchanged unless its mimetype is ``application/json`` (or ``*+json``), it is not
        streamed, has no ``Content-Encoding`` yet and its body is larger than the threshold.
    accepted : werkzeug.datastructures.Accept
        The request's ``Accept-Encoding`` (``request.accept_encodings``). gzip is preferred,
        then deflate (zlib stream, as HTTP's ``deflate`` means); neither: body unchanged.

    Returns
    -------
    flask.Response
        The same response object; when compressed, with ``Content-Encoding``, the compressed
        ``Content-Length``, ``Vary: Accept-Encoding`` and any strong ETag made weak.
    """
    mimetype = response.mimetype or ""
    if not (mimetype == "application/json" or mimetype.endswith("+json")):
        return response
    if response.is_streamed or response.direct_passthrough or "Content-Encoding" in response.headers:
        return response
    if response.status_code < 200 or response.status_code in (204, 304):
        return response
    body = response.get_data()
    if len(body) <= COMPRESS_MIN_BYTES:
        return response
    response.vary.add("Accept-Encoding")
    if accepted["gzip"] > 0:
        encoding, data = "gzip", gzip.compress(body, compresslevel=COMPRESS_LEVEL, mtime=0)
    elif accepted["deflate"] > 0:
        encoding, data = "deflate", zlib.compress(body, COMPRESS_LEVEL)
    else:
        return response
    response.set_data(data)
    response.headers["Content-Encoding"] = encoding
    etag, weak = response.get_etag()
    if etag and not weak:
        response.set_etag(etag, weak=True)
    return response


# --- metrics --------------------------------------------------------------------------------------
def multiprocess_dir() -> str | None:
    """``PROMETHEUS_MULTIPROC_DIR`` when set (gunicorn with several workers), else None."""
    return os.environ.get(MULTIPROC_ENV) or os.environ.get(MULTIPROC_ENV.lower()) or None


class RuntimeCollector:
    """Figures read at scrape time from the database and the queue of one :class:`Runtime`.

    They are global to the deployment (every web pod reports the same values), so aggregate
    them with ``max`` rather than ``sum`` across pods. A part that cannot be read reports
    ``looplabel_metrics_source_up{source=...} 0`` instead of failing the whole scrape.
    """

    def __init__(self, runtime: "Runtime"):
        self.runtime = runtime

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("looplabel_metrics_source_up",
                               "1 when the source of the scrape-time figures answered.", labels=["source"])
        for source, produce in (("queue", self._queue_metrics), ("database", self._database_metrics)):
            try:
                families = list(produce())
            except Exception as exc:  # a scrape must not fail because one part is down
                log.warning("metrics source %s failed: %s: %s", source, type(exc).__name__, exc)
                up.add_metric([source], 0)
                continue
            up.add_metric([source], 1)
            yield from families
        yield up

    def _queue_metrics(self) -> Iterator[Metric]:
        from backend.queue import QUEUE_NAMES

        depth = GaugeMetricFamily("looplabel_queue_depth", "Jobs waiting in each queue.", labels=["queue"])
        for name in QUEUE_NAMES:
            depth.add_metric([name], self.runtime.queue.depth(name))
        yield depth

    def _database_metrics(self) -> Iterator[Metric]:
        from sqlalchemy import func, select

        from backend.models import Assignment, Job, utcnow

        jobs = GaugeMetricFamily("looplabel_jobs", "Job rows by kind and status.", labels=["kind", "status"])
        leases = GaugeMetricFamily("looplabel_active_leases",
                                   "Crowd assignments leased and not yet expired.")
        with self.runtime.db.session() as s:
            for kind, status, count in s.execute(
                select(Job.kind, Job.status, func.count()).group_by(Job.kind, Job.status)
            ):
                jobs.add_metric([kind, status], count)
            leases.add_metric([], s.scalar(
                select(func.count()).select_from(Assignment)
                .where(Assignment.status == "leased", Assignment.lease_expires_at > utcnow())
            ) or 0)
            finished = s.execute(
                select(Job.kind, Job.status, Job.started_at, Job.ended_at).where(
                    Job.status.in_(("finished", "failed")),
                    Job.started_at.is_not(None), Job.ended_at.is_not(None),
                )
            ).all()
        yield jobs
        yield leases
        yield job_duration_family(
            (kind, status, (ended - started).total_seconds()) for kind, status, started, ended in finished
        )


def job_duration_family(durations) -> HistogramMetricFamily:
    """``looplabel_job_duration_seconds`` from ``(kind, status, seconds)`` triples.

    Parameters
    ----------
    durations : iterable of (str, str, float)
        Job kind, final status (``finished`` | ``failed``) and run time in seconds (negative
        values, from clock skew between hosts, count as 0).

    Returns
    -------
    HistogramMetricFamily
        Cumulative bucket counts over :data:`JOB_BUCKETS_S` plus ``+Inf``, and the sum, for each
        (kind, status) seen.
    """
    grouped: dict[tuple[str, str], list[float]] = {}
    for kind, status, seconds in durations:
        grouped.setdefault((kind, status), []).append(max(float(seconds), 0.0))
    family = HistogramMetricFamily("looplabel_job_duration_seconds",
                                   "Run time of finished and failed jobs, by kind and status.",
                                   labels=["kind", "status"])
    for (kind, status), values in sorted(grouped.items()):
        buckets = [(floatToGoString(bound), sum(1 for v in values if v <= bound)) for bound in JOB_BUCKETS_S]
        buckets.append(("+Inf", len(values)))
        family.add_metric([kind, status], buckets, sum_value=sum(values))
    return family


def render_metrics(runtime: "Runtime") -> tuple[bytes, str]:
    """The Prometheus text exposition for ``GET /metrics`` and its content type.

    Request metrics come from this process's registry, or, when ``PROMETHEUS_MULTIPROC_DIR`` is
    set, from every process that wrote to that directory (all gunicorn workers). Job, queue
    and lease figures are read now from ``runtime`` (see :class:`RuntimeCollector`).
    """
    registry = CollectorRegistry(auto_describe=False)
    if multiprocess_dir():
        from prometheus_client.multiprocess import MultiProcessCollector

        MultiProcessCollector(registry)
    else:
        registry.register(_REQUEST_REGISTRY)
    registry.register(RuntimeCollector(runtime))
    return generate_latest(registry), CONTENT_TYPE_LATEST


def mark_worker_dead(pid: int) -> None:
    """Tell the multi-process registry that worker ``pid`` exited (gunicorn ``child_exit``)."""
    if multiprocess_dir():
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


def reset_multiprocess_dir() -> None:
    """Create ``PROMETHEUS_MULTIPROC_DIR`` if missing and delete stale ``*.db`` files from it.

    Call once when the server starts (gunicorn ``on_starting``), before any worker forks;
    files left by a previous run would otherwise be added to this run's counters.
    """
    folder = multiprocess_dir()
    if not folder:
        return
    os.makedirs(folder, exist_ok=True)
    for name in os.listdir(folder):
        if name.endswith(".db"):
            os.unlink(os.path.join(folder, name))
