"""Serving the gateway in production: Gunicorn's process group of Uvicorn workers."""
