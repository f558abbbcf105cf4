"""gunicorn settings for LoopLabel's web tier.

The images load this file through ``GUNICORN_CMD_ARGS="--config /app/deploy/gunicorn.conf.py"``;
outside a container, export the same variable before ``looplabel serve --prod``. Workers,
threads and the bind address come from ``looplabel serve --prod`` (WEB_WORKERS, WEB_THREADS,
--host/--port); this file adds what a process pool needs:

* JSON log lines (LOG_LEVEL) from gunicorn itself and from every worker, through the same
  formatter as the app (:func:`backend.observability.configure_logging`);
* Prometheus multi-process mode: when PROMETHEUS_MULTIPROC_DIR is set, the directory is
  emptied when the server starts and a dead worker's files are marked, so ``/metrics`` on any
  worker reports the sum over all of them.
"""

import os

from backend.observability import mark_worker_dead, reset_multiprocess_dir

LOG_LEVEL = (os.environ.get("LOG_LEVEL") or "INFO").upper()

logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "backend.observability.JsonLogFormatter"}},
    "filters": {"request_id": {"()": "backend.observability.RequestIdFilter"}},
    "handlers": {
        "stderr": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "filters": ["request_id"],
            "stream": "ext://sys.stderr",
        }
    },
    "root": {"level": LOG_LEVEL, "handlers": ["stderr"]},
    "loggers": {
        # gunicorn's messages lose their own handler and go through the root one.
        "gunicorn.error": {"level": LOG_LEVEL, "handlers": [], "propagate": True},
        # The app writes one access line per request itself (with the request id and route),
        # so gunicorn's access lines are dropped, even with --access-logfile.
        "gunicorn.access": {"level": "WARNING", "handlers": [], "propagate": False},
        # set-up chatter of the schema check, as backend.observability.CHATTY_LOGGERS
        "alembic": {"level": "DEBUG" if LOG_LEVEL == "DEBUG" else "WARNING"},
    },
}

# Heartbeat files on tmpfs: a read-only or slow root filesystem must not stall workers.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
# No runtime control socket (gunicorn >= 25): nothing to manage at run time, and it would be
# written under $HOME, which is read-only in the Kubernetes pods.
control_socket_disable = True
# Large uploads (MAX_UPLOAD_MB) stream for a while; gthread workers keep heart-beating meanwhile.
timeout = 120
graceful_timeout = 30
keepalive = 5


def on_starting(server):
    reset_multiprocess_dir()


def child_exit(server, worker):
    mark_worker_dead(worker.pid)
