"""The extensions of the mounted apps, found beside their factories.

A registry entry names a factory (``"services.v2:create_app"``); the module of that factory
may declare ``GATEWAY_EXTENSION`` (an ``AppExtension``). The gateway collects one per name
across the versions and ``/internal`` and uses each: its settings section is read with the
gateway's own and handed to the app's factory, ``prepare`` runs once per deploy before the
workers fork, ``add_commands`` when the ``gateway`` command is built. The gateway itself
imports no app: the modules are named by the registry's strings.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from dotenv import dotenv_values

from gateway.settings import (
    ENV_FILE,
    ENV_PREFIX,
    AppSettings,
    InvalidSettingsError,
    Settings,
    load_app_settings,
    load_settings,
)

EXTENSION_ATTRIBUTE = "GATEWAY_EXTENSION"
SectionT = TypeVar("SectionT", bound=AppSettings)
# How an extension's command reads its settings section: flags (by field name) over the
# rest; an invalid value ends the command with one line naming it, as for the gateway's own.
SettingsLoader = Callable[[dict[str, Any] | None], SectionT]
Commands = argparse._SubParsersAction  # argparse names no public type for it.


@dataclass(frozen=True)
class AppExtension(Generic[SectionT]):
    """What an app adds to the gateway beyond its routes; several apps may share one (the
    catalog's versions do), and the gateway uses each once, by ``name``."""

    name: str
    # The app's own settings section: read once with the gateway's, then handed to its
    # factory (``create_app(section)``; an app without a section is called ``create_app()``).
    settings: type[SectionT] | None = None
    # Once per deploy, in `gateway serve`'s arbiter before any worker forks (and before
    # `gateway dev` starts Uvicorn): migrations. Given the section and the worker count.
    prepare: Callable[[SectionT, int], None] | None = None
    # Registers commands under `gateway` (e.g. `gateway db ...`), given how to read the section.
    add_commands: Callable[[Commands[argparse.ArgumentParser], SettingsLoader[SectionT]], None] | None = None


def extension_of(factory: str) -> AppExtension[Any] | None:
    """The extension declared beside ``factory`` ('package.module:function'), if any."""
    module = importlib.import_module(factory.partition(":")[0])
    extension = getattr(module, EXTENSION_ATTRIBUTE, None)
    if extension is not None and not isinstance(extension, AppExtension):
        raise TypeError(f"{module.__name__}.{EXTENSION_ATTRIBUTE} is not a gateway.api.AppExtension")
    return extension


def app_extensions(settings: Settings) -> list[AppExtension[Any]]:
    """Each extension of the apps the settings mount, once, in registry order."""
    factories = [entry.factory for entry in settings.versions]
    if settings.internal_app is not None:
        factories.append(settings.internal_app)
    extensions: dict[str, AppExtension[Any]] = {}
    for factory in factories:
        extension = extension_of(factory)
        if extension is not None:
            extensions.setdefault(extension.name, extension)
    return list(extensions.values())


def load_group_settings(flags: Mapping[str, Any] | None = None) -> Settings:
    """What a process group reads once: the gateway's settings (``flags`` over the rest),
    carrying every mounted app's section."""
    return with_app_settings(load_settings(flags))


def with_app_settings(settings: Settings) -> Settings:
    """``settings`` carrying every mounted app's section, read now from the same sources;
    a ``GATEWAY_*`` key in ``.env`` that neither the gateway nor an app reads is refused."""
    sections = [
        load_app_settings(extension.settings) for extension in app_extensions(settings) if extension.settings
    ]
    _refuse_unknown_env_file_keys([type(settings), *(type(section) for section in sections)])
    return settings.with_app_settings(*sections)


def section_of(extension: AppExtension[SectionT], settings: Settings) -> SectionT | None:
    """The extension's section as ``settings`` carry it, else read now (settings built by hand)."""
    if extension.settings is None:
        return None
    return settings.app_settings(extension.settings) or load_app_settings(extension.settings)


def prepare_apps(settings: Settings, workers: int) -> None:
    """Run every extension's once-per-deploy step (migrations) before workers start."""
    for extension in app_extensions(settings):
        if extension.prepare is not None:
            extension.prepare(section_of(extension, settings), workers)


def _refuse_unknown_env_file_keys(models: list[type[Settings] | type[AppSettings]]) -> None:
    # A typo in .env would otherwise be a default silently kept.
    path = Path(ENV_FILE)
    if not path.is_file():
        return
    known = {f"{ENV_PREFIX}{name}".upper() for model in models for name in model.model_fields}
    unknown = sorted(
        key for key in dotenv_values(path) if key.upper().startswith(ENV_PREFIX) and key.upper() not in known
    )
    if unknown:
        raise InvalidSettingsError(
            f"{', '.join(unknown)} in {path.resolve()}: no setting of the gateway or of its apps "
            f"is named so; correct the name or remove the line"
        )


def section_loader(extension: AppExtension[SectionT]) -> SettingsLoader[SectionT]:
    """How ``extension``'s commands read their section: ``flags`` (by field name) over the rest."""

    def load(flags: Mapping[str, Any] | None = None) -> SectionT:
        if extension.settings is None:
            raise TypeError(f"the {extension.name} extension declares no settings section")
        return load_app_settings(extension.settings, flags)

    return load
