"""The extensions of the mounted apps, found beside their factories.

A registry entry names a factory (``"services.v2:create_app"``); the module of that factory
may declare ``GATEWAY_EXTENSION`` (``gateway.api.AppExtension``). The gateway collects one
per name across the versions and ``/internal`` and calls each: ``prepare`` once per deploy
before the workers fork, ``add_commands`` when the ``gateway`` command is built. The gateway
itself imports no app: the modules are named by the registry's strings.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from gateway.api import AppExtension

if TYPE_CHECKING:
    from gateway.settings import Settings

EXTENSION_ATTRIBUTE = "GATEWAY_EXTENSION"


def app_extensions(settings: Settings) -> list[AppExtension]:
    """Each extension of the apps the settings mount, once, in registry order."""
    factories = [entry.factory for entry in settings.versions]
    if settings.internal_app is not None:
        factories.append(settings.internal_app)
    extensions: dict[str, AppExtension] = {}
    for factory in factories:
        module = importlib.import_module(factory.partition(":")[0])
        extension = getattr(module, EXTENSION_ATTRIBUTE, None)
        if extension is None:
            continue
        if not isinstance(extension, AppExtension):
            raise TypeError(f"{module.__name__}.{EXTENSION_ATTRIBUTE} is not a gateway.api.AppExtension")
        extensions.setdefault(extension.name, extension)
    return list(extensions.values())


def prepare_apps(settings: Settings, workers: int) -> None:
    """Run every extension's once-per-deploy step (migrations) before workers start."""
    for extension in app_extensions(settings):
        if extension.prepare is not None:
            extension.prepare(settings, workers)
