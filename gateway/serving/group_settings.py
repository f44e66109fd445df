"""The settings of one process group: read once by the arbiter, handed to every worker.

The arbiter reads them when it loads its configuration (``gunicorn_conf``), and again on
each SIGHUP, where the reload guard reads and checks them before letting the reload go on;
that read, the gateway's settings with every mounted app's section, is the group's. (Gunicorn
imports a ``python:`` configuration module once, so its own settings, such as the worker
count or the bind address, stay those of the start; the gateway's are the workers'.) Each
worker object is built in the arbiter and forked from it: it takes the settings from here,
and so does the app factory Gunicorn calls in the worker (``create_group_app``). No worker reads ``.env``, a secret file or the
environment again, so a file broken after the arbiter's read cannot stop a worker from
starting: a worker respawned after a crash or ``max_requests`` serves the group's last good
settings, and the next SIGHUP (refused while they do not load) picks the new ones up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.extensions import load_group_settings

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from gateway.settings import Settings

# Gunicorn's app URI for the gateway: the root app of the group's settings.
GROUP_APP = "gateway.serving.group_settings:create_group_app()"


class _Group:
    """This process's group settings; set in the arbiter, inherited by every fork."""

    adopted: Settings | None = None


def settings_for_configuration() -> Settings:
    """For ``gunicorn_conf``: the settings read now, adopted as the group's. Raises
    ``InvalidSettingsError``."""
    _Group.adopted = load_group_settings()
    return _Group.adopted


def adopt_reloaded(settings: Settings) -> None:
    """For the reload guard: the settings it read and found servable; the workers a SIGHUP
    starts serve them."""
    _Group.adopted = settings


def group_settings() -> Settings:
    """The group's settings, as the arbiter adopted them; read now in a process that did not
    (the worker class under a configuration other than the gateway's)."""
    if _Group.adopted is None:
        _Group.adopted = load_group_settings()
    return _Group.adopted


def create_group_app() -> Starlette:
    """The gateway's root app over the group's settings: Gunicorn's app, in each worker."""
    from gateway.app import create_app

    return create_app(group_settings())
