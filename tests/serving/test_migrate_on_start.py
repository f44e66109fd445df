"""``gateway serve`` on a fresh machine: the arbiter migrates the embedded SQLite once, before
any worker forks, and the workers serve the catalog without running any DDL themselves."""

from __future__ import annotations

import json

from services.catalog.schema import HEAD_REVISION
from tests.servers import loopback_client
from tests.serving.conftest import GatewayGroup


def test_the_arbiter_migrates_once_before_the_workers_fork(gateway_group: GatewayGroup) -> None:
    with gateway_group(workers=2) as server, loopback_client(server.origin) as client:
        created = client.post("/v2/items", json={"name": "Teapot", "price": {"amount": "1.00"}})
    records = [json.loads(line) for line in server.stdout.lines()]
    messages = [(record["logger"], record["message"]) for record in records]

    assert created.status_code == 201, created.text
    upgrades = [index for index, (logger, _) in enumerate(messages) if logger == "gateway.database"]
    assert [messages[index][1].split(": ", 1)[1] for index in upgrades] == [
        f"upgraded the schema from revision none to {HEAD_REVISION}"
    ], messages
    first_worker = next(
        index for index, (_, message) in enumerate(messages) if message.startswith("Booting worker")
    )
    assert upgrades[0] < first_worker
