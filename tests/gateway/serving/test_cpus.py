"""Worker count from the CPUs a container may really use, not the host's core count."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gateway.serving import cpus


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("cpu_max", "expected"),
    [("200000 100000\n", 2.0), ("150000 100000", 1.5), ("max 100000", None), ("50000 100000", 0.5)],
)
def test_cgroup_v2_quota(tmp_path: Path, cpu_max: str, expected: float | None) -> None:
    assert cpus.cgroup_cpu_limit(cpu_max=_write(tmp_path / "cpu.max", cpu_max)) == expected


def test_cgroup_v1_quota(tmp_path: Path) -> None:
    missing = tmp_path / "absent"
    quota = _write(tmp_path / "quota", "300000")
    period = _write(tmp_path / "period", "100000")
    assert cpus.cgroup_cpu_limit(cpu_max=missing, v1_quota=quota, v1_period=period) == 3.0
    unlimited = _write(tmp_path / "unlimited", "-1")
    assert cpus.cgroup_cpu_limit(cpu_max=missing, v1_quota=unlimited, v1_period=period) is None
    assert cpus.cgroup_cpu_limit(cpu_max=missing, v1_quota=missing, v1_period=missing) is None


def test_the_quota_caps_the_affinity_mask(monkeypatch: pytest.MonkeyPatch) -> None:
    # monkeypatch restores both functions after the test; no real cgroup is touched.
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)))
    monkeypatch.setattr(cpus, "cgroup_cpu_limit", lambda: 1.5)
    assert cpus.usable_cpus() == 2
    monkeypatch.setattr(cpus, "cgroup_cpu_limit", lambda: 0.25)
    assert cpus.usable_cpus() == 1
    monkeypatch.setattr(cpus, "cgroup_cpu_limit", lambda: None)
    assert cpus.usable_cpus() == 64


def test_web_concurrency_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpus, "usable_cpus", lambda: 8)
    assert cpus.default_worker_count({"WEB_CONCURRENCY": "3"}) == 3
    assert cpus.default_worker_count({}) == 8
