"""The version registry: which API versions exist, and where each is in its lifecycle.

Versions are data, not code: each entry names the import path of the version's app
factory, so adding v3 is a new package under ``services/`` plus one entry here, in
settings, or in ``GATEWAY_VERSIONS`` (JSON).
"""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator


class Lifecycle(StrEnum):
    CURRENT = "current"
    DEPRECATED = "deprecated"
    SUNSET = "sunset"


_PREFIX_PATTERN = re.compile(r"^/[A-Za-z0-9][A-Za-z0-9._-]*$")
_FACTORY_PATTERN = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")

# Prefixes the root app serves itself; a version mounted there would shadow them.
RESERVED_PREFIXES = frozenset({"/health", "/docs", "/metrics", "/static", "/.well-known", "/internal"})


def _check_prefix(prefix: str) -> str:
    if not _PREFIX_PATTERN.match(prefix):
        raise ValueError("a prefix is one path segment such as '/v1'")
    if prefix in RESERVED_PREFIXES:
        raise ValueError(f"{prefix!r} is reserved for the gateway's own routes")
    return prefix


def check_factory(factory: str) -> str:
    if not _FACTORY_PATTERN.match(factory):
        raise ValueError("a factory is written 'package.module:function'")
    return factory


def rfc3339(moment: datetime) -> str:
    """A lifecycle moment as the wire shows it: RFC 3339 in UTC, with ``Z``."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _as_utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class Brownout(BaseModel):
    """A window before the sunset in which the version answers as if it were gone, so
    that the callers it still has notice while they can still move."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    start: Annotated[datetime, AfterValidator(_as_utc)]
    end: Annotated[datetime, AfterValidator(_as_utc)]

    @model_validator(mode="after")
    def _check_order(self) -> Self:
        if self.end <= self.start:
            raise ValueError(f"a brownout must end after it starts ({self.start} to {self.end})")
        return self

    def covers(self, now: datetime) -> bool:
        return self.start <= now < self.end


class VersionEntry(BaseModel):
    """One mounted API version."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    prefix: Annotated[str, AfterValidator(_check_prefix)] = Field(
        description="Path prefix the version is mounted at, e.g. '/v1'."
    )
    factory: Annotated[str, AfterValidator(check_factory)] = Field(
        description="Import path of the version's app factory: 'services.v1:create_app'."
    )
    status: Lifecycle = Lifecycle.CURRENT
    deprecated_at: Annotated[datetime | None, AfterValidator(_as_utc)] = Field(
        default=None, description="When the version was deprecated (the Deprecation header, RFC 9745)."
    )
    sunset_at: Annotated[datetime | None, AfterValidator(_as_utc)] = Field(
        default=None, description="When the version stops answering (the Sunset header, RFC 8594)."
    )
    successor: str | None = Field(default=None, description="Prefix of the version that replaces this one.")
    migration_guide: str | None = Field(
        default=None, description="URL of the migration notes, sent as Link rel=deprecation."
    )
    brownouts: list[Brownout] = Field(
        default_factory=list,
        description="Windows between deprecation and sunset in which the version answers 410 (RFC 3339 start, end).",
    )

    @model_validator(mode="after")
    def _check_lifecycle(self) -> Self:
        if self.status is not Lifecycle.CURRENT and self.deprecated_at is None:
            raise ValueError(f"version {self.prefix}: a {self.status} version needs deprecated_at")
        if self.sunset_at is not None and self.deprecated_at is None:
            raise ValueError(f"version {self.prefix}: sunset_at needs deprecated_at")
        if (
            self.sunset_at is not None
            and self.deprecated_at is not None
            and self.sunset_at < self.deprecated_at
        ):
            # RFC 9745 section 2.1: the sunset must not be earlier than the deprecation.
            raise ValueError(f"version {self.prefix}: sunset_at is earlier than deprecated_at")
        if self.successor == self.prefix:
            raise ValueError(f"version {self.prefix}: a version cannot succeed itself")
        self._check_brownouts()
        return self

    def _check_brownouts(self) -> None:
        if self.brownouts and self.deprecated_at is None:
            raise ValueError(f"version {self.prefix}: brownouts need deprecated_at")
        windows = sorted(self.brownouts, key=lambda window: window.start)
        for window in windows:
            if self.deprecated_at is not None and window.start < self.deprecated_at:
                raise ValueError(
                    f"version {self.prefix}: the brownout from {window.start} starts before deprecated_at"
                )
            if self.sunset_at is not None and window.end > self.sunset_at:
                raise ValueError(
                    f"version {self.prefix}: the brownout from {window.start} ends after sunset_at"
                )
        for earlier, later in itertools.pairwise(windows):
            if later.start < earlier.end:
                raise ValueError(
                    f"version {self.prefix}: the brownouts from {earlier.start} and {later.start} overlap"
                )

    @property
    def name(self) -> str:
        return self.prefix.lstrip("/")

    def is_gone(self, now: datetime) -> bool:
        """Whether the version has reached its end of life at ``now``."""
        if self.status is Lifecycle.SUNSET:
            return True
        return self.sunset_at is not None and now >= self.sunset_at

    def brownout_at(self, now: datetime) -> Brownout | None:
        """The brownout window ``now`` falls in, if any."""
        return next((window for window in self.brownouts if window.covers(now)), None)

    def lifecycle_at(self, now: datetime) -> Lifecycle:
        if self.is_gone(now):
            return Lifecycle.SUNSET
        return self.status


def check_registry(entries: list[VersionEntry]) -> list[VersionEntry]:
    """Refuse registries the gateway could not serve: duplicate prefixes, dangling successors."""
    prefixes = [entry.prefix for entry in entries]
    duplicates = sorted({prefix for prefix in prefixes if prefixes.count(prefix) > 1})
    if duplicates:
        raise ValueError(f"prefixes registered twice: {', '.join(duplicates)}")
    for entry in entries:
        if entry.successor is not None and entry.successor not in prefixes:
            raise ValueError(f"version {entry.prefix}: successor {entry.successor} is not registered")
    return entries


def default_registry() -> list[VersionEntry]:
    return [
        VersionEntry(
            prefix="/v1",
            factory="services.v1:create_app",
            status=Lifecycle.DEPRECATED,
            deprecated_at=datetime(2026, 9, 1, tzinfo=UTC),
            sunset_at=datetime(2027, 9, 1, tzinfo=UTC),
            successor="/v2",
        ),
        VersionEntry(prefix="/v2", factory="services.v2:create_app", status=Lifecycle.CURRENT),
    ]
