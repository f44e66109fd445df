"""How many CPUs this process may really use.

``os.cpu_count()`` is the host's count: in a container limited to 2 CPUs on a 64-core
node, a worker count derived from it starts 64 workers that fight over 2 CPUs (the
long-standing complaint against the popular Gunicorn images). The CPU affinity mask and
the cgroup CPU quota are what the kernel will actually grant.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.settings import load_settings

if TYPE_CHECKING:
    from gateway.settings import Settings

CGROUP_V2_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")
CGROUP_V1_QUOTA = Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
CGROUP_V1_PERIOD = Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us")


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def cgroup_cpu_limit(
    cpu_max: Path = CGROUP_V2_CPU_MAX, v1_quota: Path = CGROUP_V1_QUOTA, v1_period: Path = CGROUP_V1_PERIOD
) -> float | None:
    """The CPU quota in CPUs (1.5 for '150000 100000'), or None when there is none."""
    if (text := _read(cpu_max)) is not None:
        quota, _, period = text.partition(" ")
        if quota != "max" and period:
            return int(quota) / int(period)
        return None
    quota_text, period_text = _read(v1_quota), _read(v1_period)
    if quota_text and period_text and int(quota_text) > 0:
        return int(quota_text) / int(period_text)
    return None


def usable_cpus() -> int:
    """CPUs in the affinity mask, capped by the cgroup quota rounded up; at least 1."""
    by_affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    limit = cgroup_cpu_limit()
    if limit is not None:
        by_affinity = min(by_affinity, math.ceil(limit))
    return max(1, by_affinity)


def default_worker_count(environment: dict[str, str] | None = None) -> int:
    """``WEB_CONCURRENCY`` when set (the convention of Heroku and the popular images), else one
    worker per usable CPU: each Uvicorn worker is an event loop that keeps one CPU busy."""
    environment = dict(os.environ) if environment is None else environment
    if concurrency := environment.get("WEB_CONCURRENCY"):
        return max(1, int(concurrency))
    return usable_cpus()


def configured_worker_count(settings: Settings | None = None) -> int:
    """The workers ``gateway serve`` starts: ``GATEWAY_WORKERS``, else ``default_worker_count``."""
    settings = settings if settings is not None else load_settings()
    return settings.workers or default_worker_count()
