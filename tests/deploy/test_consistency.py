"""The numbers agree across the gateway's Settings, the Dockerfile and the Kubernetes
manifests: one port, probe paths the gateway serves, a grace period that outlasts the
shutdown, one user, writable paths that are volumes, memory for every worker."""

from __future__ import annotations

import math
import re
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy.engine import make_url
from starlette.routing import Route

from gateway.app import create_app
from gateway.settings import ENV_PREFIX, Settings
from tests.conftest import catalog_of, gateway_settings, is_setting_variable
from tests.deploy.files import (
    container_env,
    final_stage,
    gateway_container,
    healthcheck,
    manifest_of_kind,
    migration_container,
)

PROBES = ("startupProbe", "livenessProbe", "readinessProbe")
# A path inside the container, not a temporary file of this machine.
CONTAINER_TMP = PurePosixPath("/tmp")  # noqa: S108
# The sizing rule behind the memory limit (see the top of deploy/k8s/deployment.yaml).
WORKER_MEMORY = 90 * 1000**2
ARBITER_MEMORY = 50 * 1000**2
_QUANTITY = re.compile(r"^(?P<number>\d+(?:\.\d+)?)(?P<suffix>m|k|M|G|Ki|Mi|Gi)?$")
_QUANTITY_FACTORS = {
    None: 1,
    "m": 0.001,
    "k": 1000,
    "M": 1000**2,
    "G": 1000**3,
    "Ki": 1024,
    "Mi": 1024**2,
    "Gi": 1024**3,
}


def quantity(value: str | int) -> float:
    """A Kubernetes quantity ("2", "500m", "512Mi") as a plain number."""
    match = _QUANTITY.match(str(value))
    assert match, f"not a quantity this test reads: {value!r}"
    return float(match["number"]) * _QUANTITY_FACTORS[match["suffix"]]


def settings_from(environment: dict[str, str]) -> Settings:
    """The Settings a process gets from these variables (the others: their defaults)."""
    values: dict[str, Any] = {
        name.removeprefix(ENV_PREFIX).lower(): value for name, value in environment.items()
    }
    return gateway_settings(**values)


def gateway_environment(environment: dict[str, str]) -> dict[str, str]:
    return {name: value for name, value in environment.items() if name.startswith(ENV_PREFIX)}


def deployment_settings() -> Settings:
    return settings_from(
        gateway_environment(container_env(gateway_container(manifest_of_kind("Deployment"))))
    )


def image_settings() -> Settings:
    return settings_from(gateway_environment(final_stage().env()))


def test_every_gateway_variable_set_is_a_valid_setting() -> None:
    for environment in (
        final_stage().env(),
        container_env(gateway_container(manifest_of_kind("Deployment"))),
        container_env(migration_container(manifest_of_kind("Deployment"))),
    ):
        for name in gateway_environment(environment):
            # A misspelt name would be ignored silently by the process, so refuse it here.
            assert is_setting_variable(name), name
    # Building them validates the values, as the gateway does at start-up.
    image_settings()
    deployment_settings()


def test_one_port_everywhere() -> None:
    default_port = Settings(_env_file=None).port
    stage = final_stage()
    exposed = {int(word.split("/")[0]) for expose in stage.all("EXPOSE") for word in expose.arguments.split()}
    container = gateway_container(manifest_of_kind("Deployment"))
    container_ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    service_ports = manifest_of_kind("Service")["spec"]["ports"]

    assert exposed == {default_port}
    assert image_settings().port == default_port
    assert deployment_settings().port == default_port
    assert container_ports == {"http": default_port}
    assert [port["targetPort"] for port in service_ports] == ["http"]


def test_the_probes_ask_for_routes_the_gateway_serves(tmp_path: Path) -> None:
    # Only the routing table is read: the lifespan (and so the store) never starts.
    app = create_app(gateway_settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/c.sqlite3"))
    served = {route.path for route in app.routes if isinstance(route, Route)}
    container = gateway_container(manifest_of_kind("Deployment"))
    probe_paths = {probe: container[probe]["httpGet"]["path"] for probe in PROBES}

    assert probe_paths["livenessProbe"] == "/health/live"
    assert probe_paths["readinessProbe"] == "/health/ready"
    assert set(probe_paths.values()) <= served
    assert _healthcheck_path() == probe_paths["livenessProbe"]


def _healthcheck_path() -> str:
    command = healthcheck(final_stage()).command
    assert command is not None
    paths: list[str] = re.findall(r"/health/\w+", " ".join(command))
    assert len(paths) == 1, command
    return paths[0]


def test_the_grace_period_outlasts_the_whole_shutdown() -> None:
    deployment = manifest_of_kind("Deployment")
    settings = deployment_settings()
    pre_stop = pre_stop_seconds(gateway_container(deployment))
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    # Kubernetes counts the grace period from the start of preStop; the gateway's own
    # delay and Gunicorn's graceful timeout follow SIGTERM; whatever is left, SIGKILL ends.
    assert grace > pre_stop + settings.prestop_delay + settings.graceful_timeout
    # The load balancer needs some time to stop sending: one of the two delays provides it.
    assert pre_stop + settings.prestop_delay > 0


def pre_stop_seconds(container: dict[str, Any]) -> float:
    pre_stop = container.get("lifecycle", {}).get("preStop")
    if pre_stop is None:
        return 0
    if "sleep" in pre_stop:
        return float(pre_stop["sleep"]["seconds"])
    executable, seconds = pre_stop["exec"]["command"]
    assert PurePosixPath(executable).name == "sleep", pre_stop
    return float(seconds)


def test_the_pod_runs_as_the_image_user() -> None:
    uid, _, gid = final_stage().last("USER").arguments.partition(":")
    pod = manifest_of_kind("Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == int(uid)
    if gid:
        assert pod["securityContext"]["runAsGroup"] == int(gid)


def test_every_path_the_gateway_writes_is_a_volume() -> None:
    container = gateway_container(manifest_of_kind("Deployment"))
    mounts = [PurePosixPath(mount["mountPath"]) for mount in container["volumeMounts"]]
    volumes = {
        volume["name"]: volume
        for volume in manifest_of_kind("Deployment")["spec"]["template"]["spec"]["volumes"]
    }
    writable = [
        # SQLite writes its database and WAL files next to each other.
        *(
            _sqlite_directory(catalog_of(settings).database_url)
            for settings in (image_settings(), deployment_settings())
        ),
        # Gunicorn's heartbeats and control socket, metrics files, spooled request bodies.
        CONTAINER_TMP,
        PurePosixPath(final_stage().env().get("XDG_RUNTIME_DIR", str(CONTAINER_TMP))),
    ]
    for path in writable:
        if path is not None:
            assert any(path == mount or mount in path.parents for mount in mounts), path
    for mount in container["volumeMounts"]:
        assert "emptyDir" in volumes[mount["name"]] or "persistentVolumeClaim" in volumes[mount["name"]]


def worker_count(container: dict[str, Any]) -> int:
    """How many workers Gunicorn starts: WEB_CONCURRENCY, else one per CPU of the quota."""
    limit = quantity(container["resources"]["limits"]["cpu"])
    for variable in container.get("env", []):
        if variable["name"] != "WEB_CONCURRENCY":
            continue
        if "value" in variable:
            return int(variable["value"])
        # The Downward API rounds the limit up to whole units of the divisor.
        field = variable["valueFrom"]["resourceFieldRef"]
        assert field["resource"] == "limits.cpu", field
        assert field.get("containerName", container["name"]) == container["name"], field
        return math.ceil(limit / quantity(field.get("divisor", "1")))
    return math.ceil(limit)


def _sqlite_directory(database_url: str) -> PurePosixPath | None:
    url = make_url(database_url)
    if not url.drivername.startswith("sqlite") or not url.database:
        return None
    path = PurePosixPath(url.database)
    assert path.is_absolute(), f"{database_url}: a relative path lands in the read-only /app"
    return path.parent


def test_memory_covers_every_worker_and_the_memory_backed_tmp() -> None:
    deployment = manifest_of_kind("Deployment")
    container = gateway_container(deployment)
    limits = container["resources"]["limits"]
    workers = worker_count(container)
    in_memory_volumes = [
        volume
        for volume in deployment["spec"]["template"]["spec"]["volumes"]
        if volume.get("emptyDir", {}).get("medium") == "Memory"
    ]
    # A memory-backed emptyDir without a size limit could take the whole memory limit.
    assert all("sizeLimit" in volume["emptyDir"] for volume in in_memory_volumes)
    in_memory = sum(quantity(volume["emptyDir"]["sizeLimit"]) for volume in in_memory_volumes)
    assert quantity(limits["memory"]) > workers * WORKER_MEMORY + ARBITER_MEMORY + in_memory
