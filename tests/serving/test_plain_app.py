"""The gateway with none of the catalog: a team's plain FastAPI app as the only version.

Served by ``gateway serve`` with ``/internal`` off, it needs no catalog setting, creates no
database file, and its readiness checks nothing but the app's own (none here).
"""

from __future__ import annotations

import json
import textwrap
from typing import TYPE_CHECKING

from tests.servers import (
    environment_without_gateway_settings,
    gateway_serve_command,
    loopback_client,
    running_server,
)

if TYPE_CHECKING:
    from pathlib import Path

# A dozen lines a team writes, unknown to this repository: no gateway import at all.
_TEAM_APP = textwrap.dedent(
    """
    from fastapi import FastAPI


    def create_app():
        app = FastAPI(title="Orders")

        @app.get("/orders/{order_id}")
        def read_order(order_id: int) -> dict[str, int]:
            return {"id": order_id}

        return app
    """
)


def test_a_plain_fastapi_app_is_served_with_no_database_anywhere(tmp_path: Path) -> None:
    (tmp_path / "orders_api.py").write_text(_TEAM_APP)
    environment = environment_without_gateway_settings()
    environment.update(
        PYTHONPATH=str(tmp_path),
        PYTHONUNBUFFERED="1",
        GATEWAY_VERSIONS=json.dumps([{"prefix": "/v1", "factory": "orders_api:create_app"}]),
        GATEWAY_INTERNAL_APP="null",
        # The catalog's settings are never read where no catalog app is mounted: this one
        # would stop any process that read it.
        GATEWAY_DATABASE_URL="mysql://nobody@nowhere/catalog",
    )
    with running_server(gateway_serve_command(workers=2), environment, tmp_path, clean_stop=0) as server:
        with loopback_client(server.origin) as client:
            assert client.get("/v1/orders/7").json() == {"id": 7}
            # Version-less paths go to the only (current) version.
            assert client.get("/orders/8").json() == {"id": 8}
            ready = client.get("/health/ready").json()
        assert ready["status"] == "pass"
        assert not any("database" in name or "catalog" in name for name in ready.get("checks", {})), ready
    assert not list(tmp_path.rglob("*.sqlite3*")), "a database file was created"
    assert not (tmp_path / "var").exists()
