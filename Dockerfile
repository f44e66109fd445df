# syntax=docker/dockerfile:1
# The gateway under Gunicorn with Uvicorn workers, as a non-root user.
#
#   docker build -t gateway:0.1.0 .
#   docker run --rm -p 8000:8000 --read-only --tmpfs /tmp -v gateway-data:/data gateway:0.1.0
#
# The image works on a read-only root filesystem when two directories are writable:
#   /tmp   a tmpfs (Kubernetes: emptyDir, medium Memory). Gunicorn's worker heartbeat
#          files, its control socket (XDG_RUNTIME_DIR), the Prometheus multiprocess
#          metrics files and spooled request bodies all go there.
#   /data  the SQLite catalog (GATEWAY_DATABASE_URL); a fresh named volume inherits the
#          image's ownership (uid 10001). Several replicas need the PostgreSQL store instead:
#          GATEWAY_DATABASE_URL=postgresql+asyncpg://...
#
# Both stages use the same base: the venv's interpreter is a symlink to the base's python.
# Pin the digest too (python:3.11-slim-trixie@sha256:...) where builds must be reproducible.

# Build stage: install the gateway into a virtualenv; nothing of this stage but the venv ships.
FROM python:3.11-slim-trixie AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md constraints.txt ./
COPY gateway gateway
COPY services services
# Every dependency ships wheels for CPython 3.11 (amd64 and arm64): no compiler needed.
# pip and setuptools leave the venv once it is built; the runtime installs nothing.
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install -c constraints.txt . \
    && /opt/venv/bin/pip uninstall --yes pip setuptools

# Final stage: the venv, the Gunicorn config, a non-root user; no compilers, no caches.
FROM python:3.11-slim-trixie
# A numeric uid and gid, so that Kubernetes' runAsNonRoot can verify the user.
RUN groupadd --gid 10001 gateway \
    && useradd --uid 10001 --gid 10001 --no-log-init --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin gateway \
    && install --directory --owner 10001 --group 10001 --mode 0750 /data
# Code stays owned by root: the process that serves requests cannot rewrite it.
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY gunicorn.conf.py ./
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    XDG_RUNTIME_DIR=/tmp \
    GATEWAY_HOST=0.0.0.0 \
    GATEWAY_PORT=8000 \
    GATEWAY_DATABASE_URL=sqlite+aiosqlite:////data/catalog.sqlite3
USER 10001:10001
EXPOSE 8000
# Docker and Compose only (Kubernetes runs its own probes). Exec form has no shell to
# expand $GATEWAY_PORT, so python reads it; curl is not in the slim image.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health/live' % (os.environ.get('GATEWAY_PORT') or '8000'), timeout=2)"]
# SIGTERM (Docker's default) makes Gunicorn finish in-flight requests within its graceful timeout.
STOPSIGNAL SIGTERM
CMD ["gunicorn", "--config", "gunicorn.conf.py", "gateway.serving.group_settings:create_group_app()"]
