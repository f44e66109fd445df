"""The overlays past one machine (deploy/overlays/scale-out and mtls), rendered by kustomize
as ``kubectl apply -k`` renders them: valid against the Kubernetes schemas and, for
cert-manager's kinds, against its vendored CRD schemas (offline, unknown fields refused);
and consistent with the gateway's settings: probes, shutdown, the PostgreSQL connection
budget, the TLS files, the SPIFFE identities and who may connect."""

from __future__ import annotations

import copy
import json
import re
import shlex
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
from starlette.routing import Route

from gateway.app import create_app
from gateway.settings import SECRETS_DIR_VARIABLE, Settings
from services.catalog.connections import ConnectionBudget
from tests.conftest import catalog_of, gateway_settings, is_setting_variable
from tests.deploy.files import (
    OVERLAYS,
    OVERLAYS_DIR,
    container_named,
    final_stage,
    kubectl_missing_reason,
    object_of_kind,
    pod_containers,
    rendered_overlay,
)
from tests.deploy.test_consistency import (
    gateway_environment,
    pre_stop_seconds,
    settings_from,
    worker_count,
)
from tests.deploy.test_k8s import KUBERNETES_VERSIONS

_missing = kubectl_missing_reason()
pytestmark = pytest.mark.skipif(_missing is not None, reason=_missing or "")

SCHEMAS_DIR = Path(__file__).with_name("schemas")
CERT_MANAGER_GROUP = "cert-manager.io"
# What the scale-out overlay is sized for: a default PostgreSQL (max_connections 100, of
# which superuser_reserved_connections keeps 3). A larger server leaves more room.
POSTGRESQL_MAX_CONNECTIONS = 100
POSTGRESQL_RESERVED_CONNECTIONS = 3
DIGEST = re.compile(r"^[^@:]+(:\d+)?(/[^@:]+)*@sha256:[0-9a-f]{64}$")
# user:password@ in any URL.
CREDENTIAL_IN_URL = re.compile(r"://[^/@\s]+:[^/@\s]*@")
CLUSTER_SCOPED = {"Namespace"}
SERVER_IDENTITY = "gateway"
PROBES = ("startupProbe", "livenessProbe", "readinessProbe")


def _deployment(overlay: str) -> dict[str, Any]:
    return object_of_kind(rendered_overlay(overlay), "Deployment", "gateway")


def _settings(overlay: str) -> Settings:
    """The gateway container's settings from its literal variables (the database URL, a
    Secret's file, stands in as a PostgreSQL URL: only its driver matters here)."""
    variables = _literal_env(container_named(_deployment(overlay), "gateway"))
    environment = gateway_environment(variables)
    environment.pop(SECRETS_DIR_VARIABLE, None)  # Not on this machine.
    environment.setdefault("GATEWAY_DATABASE_URL", "postgresql+asyncpg://gateway@db/catalog")
    return settings_from(environment)


def _literal_env(container: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container.get("env", []) if "value" in item}


# --- Validation -------------------------------------------------------------------------


@cache
def _cert_manager_schema(kind: str) -> dict[str, Any]:
    path = SCHEMAS_DIR / f"{CERT_MANAGER_GROUP}-v1-{kind}.json"
    schema: dict[str, Any] = _refuse_unknown_fields(json.loads(path.read_text(encoding="utf-8")))
    return schema


def _refuse_unknown_fields(node: Any) -> Any:
    """As the API server's strict field validation: an object schema with listed properties
    takes no other field, unless it says it keeps unknown ones."""
    if isinstance(node, list):
        return [_refuse_unknown_fields(item) for item in node]
    if not isinstance(node, dict):
        return node
    strict = {key: _refuse_unknown_fields(value) for key, value in node.items()}
    if (
        "properties" in strict
        and "additionalProperties" not in strict
        and not strict.get("x-kubernetes-preserve-unknown-fields")
    ):
        strict["additionalProperties"] = False
    return strict


def schema_errors(document: dict[str, Any], kubernetes_version: str) -> list[str]:
    """Every way one object breaks its schema: the API's for core kinds, the vendored CRD's for cert-manager."""
    name = f"{document.get('kind')} {document.get('metadata', {}).get('name')}"
    group = str(document.get("apiVersion", "")).partition("/")[0]
    if group == CERT_MANAGER_GROUP:
        if document["apiVersion"] != f"{CERT_MANAGER_GROUP}/v1":
            return [f"{name}: only {CERT_MANAGER_GROUP}/v1 is vendored"]
        path = SCHEMAS_DIR / f"{CERT_MANAGER_GROUP}-v1-{document['kind']}.json"
        if not path.exists():
            return [f"{name}: no vendored schema for {document['kind']} (tests/deploy/schemas)"]
        validator = jsonschema.Draft7Validator(_cert_manager_schema(document["kind"]))
        return [
            f"{name} {'.'.join(map(str, error.absolute_path))}: {error.message}"
            for error in validator.iter_errors(document)
        ]
    try:
        kubernetes_validate.validate(document, kubernetes_version, strict=True)
    except kubernetes_validate.ValidationError as error:
        return [f"{name} {'.'.join(str(part) for part in error.path)}: {error.message}"]
    except kubernetes_validate.SchemaNotFoundError as error:
        return [f"{name}: {error.message}"]
    return []


@pytest.mark.parametrize("kubernetes_version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_rendered_object_is_valid(overlay: str, kubernetes_version: str) -> None:
    errors = [
        error
        for document in rendered_overlay(overlay)
        for error in schema_errors(document, kubernetes_version)
    ]
    assert errors == []


@pytest.mark.parametrize(
    ("field", "value"),
    [("secretNmae", "gateway-tls"), ("usages", ["server auth", "telepathy"]), ("duration", 90)],
)
def test_the_vendored_schema_reports_a_broken_certificate(field: str, value: object) -> None:
    certificate = copy.deepcopy(object_of_kind(rendered_overlay("mtls"), "Certificate", "gateway-server"))
    certificate["spec"][field] = value
    assert schema_errors(certificate, KUBERNETES_VERSIONS[0]) != []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_everything_lands_in_the_overlays_own_namespace(overlay: str) -> None:
    objects = rendered_overlay(overlay)
    namespace = object_of_kind(objects, "Namespace")["metadata"]["name"]
    assert namespace != "default"
    for item in objects:
        if item["kind"] not in CLUSTER_SCOPED:
            assert item["metadata"].get("namespace") == namespace, item["kind"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_image_is_pinned_by_digest(overlay: str) -> None:
    containers = pod_containers(_deployment(overlay))
    for container in containers:
        assert DIGEST.match(container["image"]), f"{container['name']}: {container['image']}"
    # The sidecar and the migration run the gateway's own release: one image for the pod.
    assert len({container["image"] for container in containers}) == 1


# --- Scale-out ----------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_database_url_is_a_secret_file_and_no_credential_is_in_a_manifest(overlay: str) -> None:
    objects = rendered_overlay(overlay)
    assert not [item for item in objects if item["kind"] == "Secret"]
    deployment = _deployment(overlay)
    volumes = {volume["name"]: volume for volume in deployment["spec"]["template"]["spec"]["volumes"]}
    for name in ("migrate", "gateway"):
        container = container_named(deployment, name)
        variables = {item["name"] for item in container.get("env", [])}
        # A variable would win over the secret file (and shows in /proc/<pid>/environ).
        assert "GATEWAY_DATABASE_URL" not in variables, name
        secrets_dir = _literal_env(container)["GATEWAY_SECRETS_DIR"]
        [mount] = [mount for mount in container["volumeMounts"] if mount["mountPath"] == secrets_dir]
        secret = volumes[mount["name"]]["secret"]
        # The migration and the workers read one database: the same Secret key, named as the setting.
        assert {item["path"]: item["key"] for item in secret["items"]} == {"GATEWAY_DATABASE_URL": "url"}
        assert secret["secretName"] == "gateway-database"
    for container in pod_containers(deployment):
        for name, value in _literal_env(container).items():
            assert not CREDENTIAL_IN_URL.search(value), f"{container['name']}: {name}"
    # Nothing of the base's SQLite is left.
    assert "data" not in volumes


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_replicas_autoscaler_budget_and_spread_fit_together(overlay: str) -> None:
    objects = rendered_overlay(overlay)
    deployment = _deployment(overlay)
    autoscaler = object_of_kind(objects, "HorizontalPodAutoscaler")
    budget = object_of_kind(objects, "PodDisruptionBudget")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]

    assert autoscaler["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert deployment["spec"]["replicas"] == autoscaler["spec"]["minReplicas"] == 3
    assert budget["spec"] == budget["spec"] | {"minAvailable": 2}
    assert "maxUnavailable" not in budget["spec"]
    # A drain can always take one pod: the budget keeps fewer than the autoscaler's floor.
    assert budget["spec"]["minAvailable"] < autoscaler["spec"]["minReplicas"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    spread = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert {constraint["topologyKey"] for constraint in spread} == {
        "kubernetes.io/hostname",
        "topology.kubernetes.io/zone",
    }
    for constraint in spread:
        assert constraint["labelSelector"]["matchLabels"].items() <= pod_labels.items()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_pools_at_the_autoscalers_maximum_fit_postgresqls_max_connections(overlay: str) -> None:
    deployment = _deployment(overlay)
    autoscaler = object_of_kind(rendered_overlay(overlay), "HorizontalPodAutoscaler")
    settings = catalog_of(_settings(overlay))
    surge = deployment["spec"]["strategy"]["rollingUpdate"]["maxSurge"]
    assert isinstance(surge, int), "a percentage surge would make the budget depend on the replica count"
    budget = ConnectionBudget(
        replicas=autoscaler["spec"]["maxReplicas"] + surge,
        workers=worker_count(container_named(deployment, "gateway")),
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
        server_limit=POSTGRESQL_MAX_CONNECTIONS - POSTGRESQL_RESERVED_CONNECTIONS,
    )
    assert not budget.exceeded, budget.describe()
    # `gateway db check` and the start-up warning compute the same sum against the real server.
    assert settings.database_replicas == budget.replicas


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_migrations_run_once_per_rollout_before_the_gateway_serves(overlay: str) -> None:
    deployment = _deployment(overlay)
    pod = deployment["spec"]["template"]["spec"]
    [migrate] = pod["initContainers"]
    assert migrate["command"] == ["gateway", "db", "upgrade"]
    assert catalog_of(_settings(overlay)).migrates_database_on_start is False
    # Old pods keep serving while the first new one migrates: the rollout never goes below its replicas.
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


# --- Consistency with the settings ------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_gateway_variable_is_a_valid_setting(overlay: str) -> None:
    for container in pod_containers(_deployment(overlay)):
        for name in gateway_environment({item["name"]: "" for item in container.get("env", [])}):
            assert is_setting_variable(name), name
    _settings(overlay)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_ask_for_served_routes_over_the_gateways_scheme(overlay: str, tmp_path: Path) -> None:
    app = create_app(gateway_settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/c.sqlite3"))
    served = {route.path for route in app.routes if isinstance(route, Route)}
    gateway = container_named(_deployment(overlay), "gateway")
    scheme = "HTTP" if _settings(overlay).tls_mode == "off" else "HTTPS"
    assert gateway["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    for probe in PROBES:
        assert gateway[probe]["httpGet"]["path"] in served, probe
        assert gateway[probe]["httpGet"].get("scheme", "HTTP") == scheme, probe


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_grace_period_outlasts_pre_stop_and_the_graceful_timeout(overlay: str) -> None:
    deployment = _deployment(overlay)
    settings = _settings(overlay)
    pre_stop = pre_stop_seconds(container_named(deployment, "gateway"))
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > pre_stop + settings.prestop_delay + settings.graceful_timeout
    assert pre_stop + settings.prestop_delay > 0


# --- mTLS -------------------------------------------------------------------------------------


def _certificates() -> dict[str, dict[str, Any]]:
    return {
        item["metadata"]["name"]: item for item in rendered_overlay("mtls") if item["kind"] == "Certificate"
    }


def _server_certificate() -> dict[str, Any]:
    [server] = [
        certificate
        for certificate in _certificates().values()
        if "server auth" in certificate["spec"].get("usages", [])
    ]
    return server


def _client_certificates() -> list[dict[str, Any]]:
    return [
        certificate
        for certificate in _certificates().values()
        if "client auth" in certificate["spec"].get("usages", [])
    ]


def _hours(duration: str) -> float:
    match = re.fullmatch(r"(\d+)h", duration)
    assert match, f"a duration in hours, as cert-manager writes them: {duration}"
    return float(match[1])


def test_the_tls_files_are_mounted_where_the_settings_expect_them() -> None:
    deployment = _deployment("mtls")
    gateway = container_named(deployment, "gateway")
    settings = _settings("mtls")
    working_directory = PurePosixPath(final_stage().last("WORKDIR").arguments)
    volumes = {volume["name"]: volume for volume in deployment["spec"]["template"]["spec"]["volumes"]}
    mounts = {PurePosixPath(mount["mountPath"]): mount for mount in gateway["volumeMounts"]}
    expected_keys = {
        settings.tls_certfile: "tls.crt",
        settings.tls_keyfile: "tls.key",
        settings.tls_ca_file: "ca.crt",
    }
    for setting_path, key in expected_keys.items():
        path = working_directory / PurePosixPath(setting_path)
        mount = mounts.get(path.parent)
        assert mount is not None, f"{path}: no volume mounted at {path.parent}"
        secret = volumes[mount["name"]]["secret"]
        assert secret["secretName"] == _server_certificate()["spec"]["secretName"]
        assert {item["path"]: item["key"] for item in secret["items"]}[path.name] == key


def test_the_certificates_carry_spiffe_ids_of_the_trust_domain() -> None:
    settings = _settings("mtls")
    trust_domain = settings.tls_trust_domain
    server = _server_certificate()["spec"]
    service = object_of_kind(rendered_overlay("mtls"), "Service")
    namespace = service["metadata"]["namespace"]
    assert server["uris"] == [f"spiffe://{trust_domain}/service/{SERVER_IDENTITY}"]
    assert f"{service['metadata']['name']}.{namespace}.svc" in server["dnsNames"]
    client_identities = set()
    for certificate in _client_certificates():
        [identity] = certificate["spec"]["uris"]  # An X.509-SVID has exactly one URI SAN.
        assert identity.startswith(f"spiffe://{trust_domain}/service/"), identity
        client_identities.add(identity)
    allowed = {identity for identities in settings.internal_allow.values() for identity in identities}
    assert allowed <= client_identities, "an allowed caller without a certificate"
    issuers = {item["metadata"]["name"] for item in rendered_overlay("mtls") if item["kind"] == "Issuer"}
    for name, certificate in _certificates().items():
        assert certificate["spec"]["issuerRef"]["name"] in issuers, name


def test_certificates_renew_before_readiness_warns_of_expiry() -> None:
    warning_hours = _settings("mtls").tls_expiry_warning_days * 24
    for name, certificate in _certificates().items():
        if certificate["spec"].get("isCA"):
            continue
        renew_before = _hours(certificate["spec"]["renewBefore"])
        assert warning_hours < renew_before < _hours(certificate["spec"]["duration"]), name
        assert certificate["spec"]["privateKey"]["rotationPolicy"] == "Always", name


def test_renewal_reaches_the_running_gateway_through_the_sidecar() -> None:
    deployment = _deployment("mtls")
    pod = deployment["spec"]["template"]["spec"]
    gateway, sidecar = container_named(deployment, "gateway"), container_named(deployment, "tls-reload")
    command = sidecar["command"]
    arguments = dict(zip(command[2::2], command[3::2], strict=True))
    pid_file = PurePosixPath(_gunicorn_option(_literal_env(gateway)["GUNICORN_CMD_ARGS"], "--pid"))

    # Signals cross containers only in one process namespace, and only to the same user.
    assert pod["shareProcessNamespace"] is True
    assert "runAsUser" not in sidecar.get("securityContext", {})
    assert PurePosixPath(arguments["--pid-file"]) == pid_file
    gateway_mounts = {mount["mountPath"]: mount["name"] for mount in gateway["volumeMounts"]}
    sidecar_mounts = {mount["mountPath"]: mount["name"] for mount in sidecar["volumeMounts"]}
    for watched in (arguments["--watch"], str(pid_file.parent)):
        assert sidecar_mounts[watched] == gateway_mounts[watched], watched
    # The script it runs is the one in the repository (tested in test_tls_reload.py).
    script = PurePosixPath(command[1])
    [config_map] = [item for item in rendered_overlay("mtls") if item["kind"] == "ConfigMap"]
    assert sidecar_mounts[str(script.parent)] in {
        volume["name"]
        for volume in pod["volumes"]
        if volume.get("configMap", {}).get("name") == config_map["metadata"]["name"]
    }
    assert config_map["data"][script.name] == (OVERLAYS_DIR / "mtls" / script.name).read_text(
        encoding="utf-8"
    )


def _gunicorn_option(arguments: str, option: str) -> str:
    words = shlex.split(arguments)
    return words[words.index(option) + 1]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_network_policy_admits_only_the_ingress_and_the_peers(overlay: str) -> None:
    objects = rendered_overlay(overlay)
    policy = object_of_kind(objects, "NetworkPolicy")
    deployment = _deployment(overlay)
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    port_names = {port["name"] for port in container_named(deployment, "gateway")["ports"]}

    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    peers: set[str] = set()
    for rule in policy["spec"]["ingress"]:
        assert rule.get("from"), "a rule without `from` admits everyone"
        assert {port["port"] for port in rule["ports"]} <= port_names
        for source in rule["from"]:
            for expression in source.get("podSelector", {}).get("matchExpressions", []):
                peers.update(expression["values"])
    if overlay == "mtls":
        clients = {certificate["spec"]["commonName"] for certificate in _client_certificates()}
        assert peers == clients
