"""The group's settings are read once, by the arbiter, and handed to every worker: a worker
respawned after the settings stopped loading (an edited ``.env``) serves the group's last good
settings without reading them, and a SIGHUP is refused, naming the variable, until they load."""

from __future__ import annotations

import os
import signal
from typing import TYPE_CHECKING

from tests.servers import loopback_client
from tests.serving.conftest import GatewayGroup, wait_for, worker_pids

if TYPE_CHECKING:
    from pathlib import Path

REFUSAL = "GATEWAY_TRUSTED_PROXIES: not valid JSON (Expecting value: line 1 column 2)"


def test_a_worker_replaced_while_the_settings_do_not_load_serves_the_groups_last_good_ones(
    gateway_group: GatewayGroup, tmp_path: Path
) -> None:
    with gateway_group(workers=1, max_body_size="64") as server:
        (victim,) = worker_pids(server)
        # The group runs in tmp_path and reads .env there; the test's variables do not set this one.
        (tmp_path / ".env").write_text("GATEWAY_TRUSTED_PROXIES=[spiffe\n")
        os.kill(victim, signal.SIGKILL)
        assert wait_for(lambda: worker_pids(server) - {victim} != set(), 15), server.output()
        with loopback_client(server.origin) as client:
            assert wait_for(lambda: client.get("/health/live").status_code == 200, 15), server.output()
            assert client.get("/health").json()["worker"]["pid"] != victim
            # The group's settings, not defaults: the body limit the arbiter read still holds.
            assert client.post("/v1/items", content=b"x" * 65).status_code == 413
            # Nothing in the new worker read the broken file.
            assert REFUSAL not in server.output()
            os.kill(server.process.pid, signal.SIGHUP)
            assert wait_for(lambda: REFUSAL in server.output(), 10), server.output()
            assert "SIGHUP ignored, the running workers keep serving" in server.output()
            assert client.get("/health/live").status_code == 200
        assert "Traceback" not in server.output()
