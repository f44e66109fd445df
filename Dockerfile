# syntax=docker/dockerfile:1
# Build stage: install the gateway into a virtualenv; nothing of it but the venv ships.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gateway gateway
COPY services services
RUN python -m venv /opt/venv && /opt/venv/bin/pip install .

# Final stage: no compilers, no caches, a non-root user.
FROM python:3.11-slim
RUN useradd --system --uid 10001 --no-create-home gateway && mkdir /data && chown gateway /data
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY gunicorn.conf.py .
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    GATEWAY_HOST=0.0.0.0 \
    GATEWAY_PORT=8000 \
    GATEWAY_DATABASE_URL=sqlite+aiosqlite:////data/catalog.sqlite3
USER gateway
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health/live', timeout=2)"]
CMD ["gunicorn", "-c", "gunicorn.conf.py", "gateway.app:create_app()"]
