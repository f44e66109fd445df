"""The Kubernetes manifests: valid against the API's schemas (offline, unknown fields
refused), complete in the kustomization, and locked down the way the restricted Pod
Security Standard asks."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.deploy.files import (
    KUSTOMIZATION,
    container_env,
    gateway_container,
    load_documents,
    manifest_of_kind,
    manifest_paths,
    migration_container,
)

# The oldest Kubernetes the manifests are for (the kubelet's preStop `sleep` action is on
# by default from 1.30), and the newest whose schemas the installed kubernetes-validate bundles.
KUBERNETES_VERSIONS = ["1.30", kubernetes_validate.latest_version()]


def schema_errors(path: Path, kubernetes_version: str) -> list[str]:
    """Every way the objects in ``path`` break the API schema; strict: unknown fields too."""
    errors = []
    for document in load_documents(path):
        try:
            kubernetes_validate.validate(document, kubernetes_version, strict=True)
        except kubernetes_validate.ValidationError as error:
            where = ".".join(str(part) for part in error.path)
            errors.append(f"{path.name}: {document.get('kind')} {where}: {error.message}")
        except kubernetes_validate.SchemaNotFoundError as error:  # A misspelt kind or apiVersion.
            errors.append(f"{path.name}: {error.message}")
    return errors


@pytest.mark.parametrize("kubernetes_version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("path", manifest_paths(), ids=lambda path: path.name)
def test_every_manifest_is_valid_kubernetes(path: Path, kubernetes_version: str) -> None:
    assert schema_errors(path, kubernetes_version) == []


def _misspell_a_probe_field(deployment: dict[str, Any]) -> None:
    gateway_container(deployment)["livenessProbe"]["httpGet"]["paht"] = "/health/live"


def _quote_the_port_as_words(deployment: dict[str, Any]) -> None:
    gateway_container(deployment)["ports"][0]["containerPort"] = "eight thousand"


def _misspell_the_kind(deployment: dict[str, Any]) -> None:
    deployment["kind"] = "Deploymnet"


@pytest.mark.parametrize("breakage", [_misspell_a_probe_field, _quote_the_port_as_words, _misspell_the_kind])
def test_validation_reports_a_broken_manifest(
    tmp_path: Path, breakage: Callable[[dict[str, Any]], None]
) -> None:
    broken = copy.deepcopy(manifest_of_kind("Deployment"))
    breakage(broken)
    path = tmp_path / "deployment.yaml"
    path.write_text(yaml.safe_dump(broken), encoding="utf-8")
    assert schema_errors(path, KUBERNETES_VERSIONS[0]) != []


def test_the_kustomization_applies_every_manifest() -> None:
    (kustomization,) = load_documents(KUSTOMIZATION)
    assert sorted(kustomization["resources"]) == [path.name for path in manifest_paths()]


def test_the_service_and_the_budget_select_the_gateway_pods() -> None:
    deployment = manifest_of_kind("Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    selectors = {
        "Deployment": deployment["spec"]["selector"]["matchLabels"],
        "Service": manifest_of_kind("Service")["spec"]["selector"],
        "PodDisruptionBudget": manifest_of_kind("PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
    }
    for kind, selector in selectors.items():
        assert selector, kind
        assert selector.items() <= pod_labels.items(), kind


@pytest.mark.parametrize("container_of", [gateway_container, migration_container])
def test_the_pod_is_locked_down(container_of: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    pod = manifest_of_kind("Deployment")["spec"]["template"]["spec"]
    container = container_of(manifest_of_kind("Deployment"))
    # A container's own securityContext overrides the pod's.
    effective = {**pod.get("securityContext", {}), **container.get("securityContext", {})}
    assert effective["runAsNonRoot"] is True
    assert effective["runAsUser"] != 0
    assert effective["readOnlyRootFilesystem"] is True
    assert effective["allowPrivilegeEscalation"] is False
    assert effective["capabilities"]["drop"] == ["ALL"]
    assert not effective["capabilities"].get("add")
    assert effective["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["automountServiceAccountToken"] is False


def test_service_links_cannot_shadow_the_gateway_settings() -> None:
    # A Service named gateway would give every pod GATEWAY_PORT=tcp://...:80 and other
    # GATEWAY_* variables, the settings' own prefix.
    pod = manifest_of_kind("Deployment")["spec"]["template"]["spec"]
    assert pod["enableServiceLinks"] is False


def test_the_probes_ask_the_gateway_over_http() -> None:
    container = gateway_container(manifest_of_kind("Deployment"))
    port_names = {port["name"] for port in container["ports"]}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["port"] in port_names, probe


def test_the_schema_is_migrated_by_the_init_container_with_the_gateways_database() -> None:
    deployment = manifest_of_kind("Deployment")
    gateway, migrate = gateway_container(deployment), migration_container(deployment)

    assert migrate["command"] == ["gateway", "db", "upgrade"]
    assert migrate["image"] == gateway["image"]
    # The same variable, literal or from a Secret: the migration and the workers share one database.
    [gateway_url] = [variable for variable in gateway["env"] if variable["name"] == "GATEWAY_DATABASE_URL"]
    [migrate_url] = [variable for variable in migrate["env"] if variable["name"] == "GATEWAY_DATABASE_URL"]
    assert migrate_url == gateway_url
    # An SQLite file is only shared through the same volume at the same path.
    assert {(mount["name"], mount["mountPath"]) for mount in gateway["volumeMounts"]} <= {
        (mount["name"], mount["mountPath"]) for mount in migrate["volumeMounts"]
    }
    # The workers' arbiter need not migrate again.
    assert container_env(gateway)["GATEWAY_DATABASE_MIGRATE_ON_START"] == "false"


def test_the_sqlite_default_runs_as_a_single_replica() -> None:
    deployment = manifest_of_kind("Deployment")
    database_url = container_env(gateway_container(deployment)).get("GATEWAY_DATABASE_URL", "sqlite")
    if database_url.startswith("sqlite"):
        # Each pod's emptyDir holds its own catalog: two replicas would disagree.
        assert deployment["spec"]["replicas"] == 1
