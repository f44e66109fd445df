"""A worker started after the settings stopped loading (an edited ``.env``) keeps serving with
the settings loaded before and says why, rather than crash the arbiter with a traceback."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from tests.servers import loopback_client
from tests.serving.conftest import GatewayGroup, wait_for, worker_pids

REFUSAL = "GATEWAY_TRUSTED_PROXIES: not valid JSON (Expecting value: line 1 column 2)"


def test_a_worker_replaced_while_the_settings_do_not_load_keeps_the_ones_before(
    gateway_group: GatewayGroup, tmp_path: Path
) -> None:
    with gateway_group(workers=1) as server:
        (victim,) = worker_pids(server)
        # The group runs in tmp_path and reads .env there; the test's variables do not set this one.
        (tmp_path / ".env").write_text("GATEWAY_TRUSTED_PROXIES=[spiffe\n")
        os.kill(victim, signal.SIGKILL)
        assert wait_for(lambda: worker_pids(server) - {victim} != set(), 15), server.output()
        with loopback_client(server.origin) as client:
            assert wait_for(lambda: client.get("/health/live").status_code == 200, 15), server.output()
            summary = client.get("/health").json()
        assert summary["worker"]["pid"] != victim
        assert wait_for(lambda: REFUSAL in server.output(), 5), server.output()
        assert "keeps the settings loaded before" in server.output()
