"""Two ``gateway serve`` process groups (2 workers each) on one PostgreSQL, as two replicas run:
what one writes the other reads, concurrent conditional writers and retried creations across
both lose and double nothing, and an outage of the database is 503s, then recovery, without
a restart.

The replicas reach PostgreSQL through a TCP proxy the test can stop and start: what a
database restart or a partition looks like to them, without stopping the shared server.
The schema is migrated once by ``gateway db upgrade``, as a deploy step would.
"""

from __future__ import annotations

import itertools
import secrets
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import catalog_versions
from tests.servers import (
    GUNICORN_CLEAN_STOP,
    ServerProcess,
    gateway_serve_command,
    run_gateway,
    running_server,
    server_environment,
)
from tests.services.databases import BackgroundTcpProxy, create_test_schema, drop_test_schema
from tests.serving.conftest import wait_for, worker_pids

WORKERS = 2
CONDITIONAL_WRITERS = 200
IDEMPOTENT_RETRIES = 100
CLIENT_THREADS = 32
OUTAGE_TIMEOUT = 15.0
TRAFFIC_LIMIT = 2000


@dataclass
class Replicas:
    servers: list[ServerProcess]
    proxy: BackgroundTcpProxy
    clients: list[httpx.Client] = field(default_factory=list)

    def client(self, number: int) -> httpx.Client:
        """Alternate between the replicas: request ``number`` goes to replica ``number % 2``."""
        return self.clients[number % len(self.clients)]


def _upgrade(environment: dict[str, str], folder: Path) -> None:
    result = run_gateway(["db", "upgrade"], env=environment, cwd=folder)
    assert result.returncode == 0, result.stderr
    assert "upgraded the schema from revision none" in result.stdout


@pytest.fixture(scope="module")
def replicas(postgresql_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicas]:
    schema_url = create_test_schema(postgresql_server)
    url = make_url(schema_url)
    proxy = BackgroundTcpProxy(url.host or "127.0.0.1", url.port or 5432)
    proxy.start()
    proxied_url = url.set(port=proxy.port).render_as_string(hide_password=False)
    folder = tmp_path_factory.mktemp("replicas")
    try:
        _upgrade(server_environment(folder, database_url=proxied_url), folder)
        with ExitStack() as stack:
            servers = []
            for number in range(2):
                replica_folder = tmp_path_factory.mktemp(f"replica-{number}")
                environment = server_environment(
                    replica_folder,
                    versions=catalog_versions(),
                    database_url=proxied_url,
                )
                server = stack.enter_context(
                    running_server(
                        gateway_serve_command(WORKERS),
                        environment,
                        replica_folder,
                        clean_stop=GUNICORN_CLEAN_STOP,
                    )
                )
                assert wait_for(partial(_has_all_workers, server), 15), server.output()
                servers.append(server)
            group = Replicas(servers, proxy)
            for server in servers:
                client = httpx.Client(
                    base_url=server.origin,
                    timeout=30,
                    trust_env=False,
                    limits=httpx.Limits(max_connections=CLIENT_THREADS),
                )
                group.clients.append(stack.enter_context(client))
            yield group
    finally:
        proxy.close()
        drop_test_schema(schema_url)


def _has_all_workers(server: ServerProcess) -> bool:
    return len(worker_pids(server)) == WORKERS


def _create(replicas: Replicas, **item: object) -> dict[str, object]:
    response = replicas.client(0).post("/v2/items", json={"price": {"amount": "1.00"}, **item})
    assert response.status_code == 201, response.text
    created: dict[str, object] = response.json()
    return created


def _revision(etag: str) -> int:
    return int(etag.strip('"').rsplit("-", 1)[1])


def test_an_item_written_through_one_replica_is_read_through_the_other(replicas: Replicas) -> None:
    created = replicas.client(0).post("/v2/items", json={"name": "Teapot", "price": {"amount": "12.50"}})
    item_id = created.json()["id"]
    read = replicas.client(1).get(f"/v2/items/{item_id}")
    renamed = replicas.client(1).patch(
        f"/v2/items/{item_id}", json={"name": "Kettle"}, headers={"If-Match": read.headers["etag"]}
    )
    read_back = replicas.client(0).get(f"/v1/items/{item_id}")

    assert created.status_code == 201, created.text
    assert read.status_code == 200, read.text
    assert read.json()["price"] == {"amount": "12.50", "currency": "EUR"}
    assert read.headers["etag"] == created.headers["etag"]
    assert renamed.status_code == 200, renamed.text
    assert read_back.json()["name"] == "Kettle"
    assert read_back.headers["etag"] == renamed.headers["etag"] == f'"{item_id}-2"'


def test_concurrent_conditional_writers_win_once_per_revision_and_lose_no_update(replicas: Replicas) -> None:
    """Each writer reads the counter, then writes it plus one if the item is still as read."""
    item_id = _create(replicas, name="Counter", description="0")["id"]

    def read_then_write(number: int) -> tuple[int, httpx.Response]:
        client = replicas.client(number)
        read = client.get(f"/v2/items/{item_id}")
        assert read.status_code == 200, read.text
        counter = int(read.json()["description"])
        written = replicas.client(number + 1).patch(
            f"/v2/items/{item_id}",
            json={"description": str(counter + 1)},
            headers={"If-Match": read.headers["etag"]},
        )
        return _revision(read.headers["etag"]), written

    with ThreadPoolExecutor(CLIENT_THREADS) as pool:
        outcomes = list(pool.map(read_then_write, range(CONDITIONAL_WRITERS)))
    final = replicas.client(1).get(f"/v2/items/{item_id}")

    statuses = Counter(written.status_code for _, written in outcomes)
    assert set(statuses) <= {200, 412}, [
        written.text for _, written in outcomes if written.status_code >= 500
    ][:3]
    wins = Counter(read_revision for read_revision, written in outcomes if written.status_code == 200)
    final_revision = _revision(final.headers["etag"])
    # Exactly one writer won each revision the item went through...
    assert wins == dict.fromkeys(range(1, final_revision), 1), (wins, final_revision)
    assert statuses[200] == final_revision - 1
    # ...and every win counted: an update lost to another would leave the counter short.
    assert final.json()["description"] == str(statuses[200])
    for read_revision, written in outcomes:
        if written.status_code == 412:
            assert _revision(written.headers["etag"]) > read_revision


def test_retries_of_one_creation_across_replicas_create_one_item(replicas: Replicas) -> None:
    tag = f"retry-{secrets.token_hex(4)}"
    body = {"name": "Once", "price": {"amount": "3.00"}, "tags": [tag]}
    key = {"Idempotency-Key": f"create-{tag}"}

    def post(number: int) -> httpx.Response:
        return replicas.client(number).post("/v2/items", json=body, headers=key)

    with ThreadPoolExecutor(CLIENT_THREADS) as pool:
        responses = list(pool.map(post, range(IDEMPOTENT_RETRIES)))
    late_retry = [post(number) for number in range(2)]
    other_body = replicas.client(1).post("/v2/items", json={**body, "name": "Twice"}, headers=key)
    tagged = replicas.client(0).get("/v2/items", params={"tag": tag})

    statuses = Counter(response.status_code for response in responses)
    # 201: the creation or its replay; 409: the first request was still running.
    assert set(statuses) <= {201, 409}, statuses
    created_ids = {
        response.json()["id"] for response in [*responses, *late_retry] if response.status_code == 201
    }
    assert len(created_ids) == 1, created_ids
    assert [item["id"] for item in tagged.json()["data"]] == list(created_ids)
    for response in late_retry:
        assert response.status_code == 201
        assert response.headers["idempotent-replayed"] == "true"
    assert other_body.status_code == 422, other_body.text


def _readiness_is(client: httpx.Client, status: int) -> bool:
    return client.get("/health/ready").status_code == status


def test_a_database_outage_is_503_then_both_replicas_recover_without_a_restart(replicas: Replicas) -> None:
    item_id = _create(replicas, name="Survivor")["id"]
    workers_before = [worker_pids(server) for server in replicas.servers]
    answers: list[httpx.Response] = []
    stop_traffic = threading.Event()

    def traffic() -> None:
        for number in itertools.islice(itertools.count(), TRAFFIC_LIMIT):
            if stop_traffic.is_set():
                return
            answers.append(replicas.client(number).get(f"/v2/items/{item_id}"))

    background = threading.Thread(target=traffic, daemon=True)
    background.start()
    try:
        assert wait_for(lambda: len(answers) >= 10, 10)
        replicas.proxy.stop()  # PostgreSQL is gone, mid-traffic.
        for client in replicas.clients:
            assert wait_for(partial(_readiness_is, client, 503), OUTAGE_TIMEOUT)
        down = [client.get(f"/v2/items/{item_id}") for client in replicas.clients]
        readiness_down = [client.get("/health/ready") for client in replicas.clients]

        replicas.proxy.start()  # Back, on the same address.
        for client in replicas.clients:
            assert wait_for(partial(_readiness_is, client, 200), OUTAGE_TIMEOUT)
        up = [client.get(f"/v2/items/{item_id}") for client in replicas.clients]
    finally:
        stop_traffic.set()
        background.join(30)

    for response in down:
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "5"
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["status"] == 503
    for response in readiness_down:
        assert response.json()["status"] == "fail"
    assert [response.status_code for response in up] == [200, 200]
    statuses = Counter(response.status_code for response in answers)
    # Never a 500 nor a hung request: only answers and "come back later".
    assert set(statuses) <= {200, 503}, statuses
    assert statuses[200] > 0
    assert all("retry-after" in response.headers for response in answers if response.status_code == 503)
    # Recovered by itself: the same workers serve.
    assert [worker_pids(server) for server in replicas.servers] == workers_before
