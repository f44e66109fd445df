"""SIGHUP refused while the settings or the TLS files would not load.

A reload replaces every worker: Gunicorn re-reads its configuration, starts new workers
and stops the old ones. When the new workers cannot start, Gunicorn 27 halts the whole
group: an exception while building a worker escapes its main loop ("Unhandled exception
in main loop", every worker stopped, exit -1), and a worker that exits before booting (an
app that cannot read its certificate file) ends in HaltServer ("Worker failed to boot").
An operator who rotated to a key that does not match its certificate, or to a path with
no file yet, would take the service down with the HUP meant to refresh it.

So the arbiter checks first, as ``nginx -s reload`` does, and on failure logs the reason
naming the setting and leaves the running workers serving what they loaded. Gunicorn's
``on_reload`` hook cannot do this: it runs inside the reload, after the configuration is
re-read, and has no way to cancel it; hence a wrapper around the arbiter's ``reload``,
which Gunicorn's HUP handler calls.
"""

from __future__ import annotations

import logging
from typing import Any

from gateway.extensions import load_group_settings
from gateway.serving.group_settings import adopt_reloaded
from gateway.settings import InvalidSettingsError
from gateway.tls.context import TLSConfigurationError, server_context

logger = logging.getLogger("gateway.serving")


def reload_problem() -> str | None:
    """Why new workers could not start with the settings and files as they are now, or None;
    settings that load become the group's, for the workers the reload starts."""
    try:
        settings = load_group_settings()
        server_context(settings)
    except (InvalidSettingsError, TLSConfigurationError) as error:
        return str(error)
    adopt_reloaded(settings)
    return None


def guard_reloads(arbiter: Any) -> None:
    """Make the arbiter's reload (SIGHUP) a no-op, logged, while ``reload_problem`` finds one."""
    reload = arbiter.reload

    def reload_when_loadable() -> None:
        problem = reload_problem()
        if problem is not None:
            logger.error("SIGHUP ignored, the running workers keep serving: %s", problem)
            return
        reload()

    arbiter.reload = reload_when_loadable
