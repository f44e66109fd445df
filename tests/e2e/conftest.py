"""Gateway processes shared by the end-to-end tests: starting one takes about a second."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import catalog_versions, probe_version
from tests.servers import (
    BehindProxy,
    ServerProcess,
    path_stripping_proxy,
    running_server,
    server_environment,
    upgrade_database,
    uvicorn_command,
)

PROXY_PREFIX = "/api"


@pytest.fixture(scope="package")
def catalog_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """v1 and v2 as shipped (with a sunset no run reaches), under plain Uvicorn."""
    folder = tmp_path_factory.mktemp("catalog")
    environment = server_environment(folder, versions=catalog_versions())
    # Plain Uvicorn has no arbiter to migrate before it serves: the deploy step does.
    upgrade_database(environment)
    with running_server(uvicorn_command(), environment, folder) as server:
        yield server


@pytest.fixture(scope="package")
def catalog_server_behind_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BehindProxy]:
    """The catalog under ``--root-path /api`` behind a proxy that strips /api."""
    folder = tmp_path_factory.mktemp("catalog-behind-proxy")
    environment = server_environment(folder, versions=catalog_versions())
    upgrade_database(environment)
    with (
        running_server(uvicorn_command(root_path=PROXY_PREFIX), environment, folder) as server,
        path_stripping_proxy(PROXY_PREFIX, server) as origin,
    ):
        yield BehindProxy(server, origin)


@pytest.fixture(scope="package")
def probe_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Only the test-only version at /v3: the harness works whatever state services/ is in."""
    folder = tmp_path_factory.mktemp("probe")
    environment = server_environment(folder, versions=[probe_version("/v3")])
    upgrade_database(environment)  # The gateway's own /internal API serves the catalog.
    with running_server(uvicorn_command(), environment, folder) as server:
        yield server


@pytest.fixture(scope="package")
def probe_server_behind_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BehindProxy]:
    folder = tmp_path_factory.mktemp("probe-behind-proxy")
    environment = server_environment(folder, versions=[probe_version("/v3")])
    upgrade_database(environment)  # The gateway's own /internal API serves the catalog.
    with (
        running_server(uvicorn_command(root_path=PROXY_PREFIX), environment, folder) as server,
        path_stripping_proxy(PROXY_PREFIX, server) as origin,
    ):
        yield BehindProxy(server, origin)
