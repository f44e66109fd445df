# Gunicorn settings for the gateway, driven by the same Settings as the app
# (GATEWAY_* environment variables, .env, secrets directory). A flat list of
# settings, each with a short comment; the serving issue extends it.
#
#   gunicorn -c gunicorn.conf.py 'gateway.app:create_app()'
import os

from gateway.logs import logging_config
from gateway.settings import load_settings

_settings = load_settings()

# Where to listen.
bind = [f"{_settings.host}:{_settings.port}"]
# Worker processes: WEB_CONCURRENCY wins, else one per CPU this process may use.
workers = int(os.environ.get("WEB_CONCURRENCY") or len(os.sched_getaffinity(0)))
# The maintained Uvicorn worker (uvicorn.workers is deprecated).
worker_class = "uvicorn_worker.UvicornWorker"
# A worker silent for this long is killed and replaced.
timeout = 30
# Time in-flight requests get to finish on shutdown.
graceful_timeout = 30
# Keep-alive idle seconds.
keepalive = 5
# One JSON log format for Gunicorn, Uvicorn and the gateway.
logconfig_dict = logging_config(_settings.log_level)
