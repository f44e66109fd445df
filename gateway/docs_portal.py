"""``/docs``: one Swagger UI for every mounted version, with a switcher, offline.

The bundled Swagger UI has no top bar (its standalone preset is not shipped offline), so
the page carries its own ``<select>``: each version that still answers, deprecated ones
marked with their sunset; ``/docs#v1`` opens on v1 (the ``Link: rel="deprecation"``
target). A deprecated version without a migration guide of its own shows the changes to
its successor, from the contract comparison, as its migration notes.
"""

from __future__ import annotations

import html
import json
from functools import cache
from typing import TYPE_CHECKING, Any

from gateway.contracts.diff import compare_documents
from gateway.docs import SWAGGER_UI_PARAMETERS

if TYPE_CHECKING:
    from collections.abc import Callable

    from gateway.contracts.schemas import Change
    from gateway.discovery import VersionLinks

# The per-version pages' options, and where this page puts the UI.
_SWAGGER_UI_OPTIONS = {**SWAGGER_UI_PARAMETERS, "dom_id": "#swagger-ui", "deepLinking": False}
_SCRIPT = """
const versions = JSON.parse(document.getElementById("versions").textContent);
const select = document.getElementById("version");
const notes = document.getElementById("migration");
const options = JSON.parse(document.getElementById("swagger-options").textContent);
function chosen() {
  const name = decodeURIComponent(location.hash.slice(1));
  return versions.find(version => version.name === name) || versions.find(version => version.primary) || versions[0];
}
function show(version) {
  select.value = version.name;
  notes.innerHTML = version.notes;
  notes.hidden = !version.notes;
  if (window.ui) { window.ui.specActions.updateUrl(version.openapi); window.ui.specActions.download(version.openapi); }
  else { window.ui = SwaggerUIBundle({...options, url: version.openapi}); }
}
select.addEventListener("change", () => { location.hash = select.value; });
window.addEventListener("hashchange", () => show(chosen()));
show(chosen());
"""


def docs_notes_source(documents: Callable[[], dict[str, dict[str, Any]]]) -> Callable[[str, str], str]:
    """Migration notes from one version to another, compared once per pair and kept."""

    @cache
    def notes(old: str, new: str) -> str:
        every = documents()
        if old not in every or new not in every:
            return ""
        return render_migration_notes(old, new, compare_documents(every[old], every[new]))

    return notes


def render_migration_notes(old: str, new: str, changes: list[Change]) -> str:
    breaking = [change for change in changes if change.breaking]
    additive = [change for change in changes if not change.breaking]
    summary = f"Moving from {old} to {new}: {len(breaking)} breaking changes, {len(additive)} additions"
    parts = [f"<details><summary><strong>{html.escape(summary)}</strong></summary>"]
    for title, group in ((f"What changes for callers of {old}", breaking), (f"What {new} adds", additive)):
        if group:
            items = "".join(
                f"<li><code>{html.escape(change.where)}</code>: {html.escape(change.what)}</li>"
                for change in group
            )
            parts.append(f"<h3>{html.escape(title)}</h3><ul>{items}</ul>")
    return "".join(parts) + "</details>"


def render_docs_portal(
    versions: list[VersionLinks], assets_url: str, notes: Callable[[str, str], str]
) -> str:
    answering = [version for version in versions if version.openapi is not None]
    current = [version for version in answering if version.status == "current"]
    primary = current[-1].name if current else (answering[-1].name if answering else None)
    entries = [
        {
            "name": version.name,
            "openapi": version.openapi,
            "primary": version.name == primary,
            "notes": _notes_for(version, notes),
        }
        for version in answering
    ]
    options = "".join(
        f'<option value="{html.escape(version.name)}">{html.escape(_label(version))}</option>'
        for version in answering
    )
    return (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>API documentation</title>"
        f'<link rel="stylesheet" href="{html.escape(assets_url)}/swagger-ui.css">'
        f'<link rel="icon" href="{html.escape(assets_url)}/favicon.png"></head><body>'
        '<header style="font-family: sans-serif; padding: 0.5em 1em; display: flex; gap: 1em; align-items: center">'
        '<strong>API documentation</strong><label for="version">Version</label>'
        f'<select id="version">{options}</select>{_other_links(answering)}</header>'
        '<section id="migration" hidden style="font-family: sans-serif; padding: 0 1em"></section>'
        '<div id="swagger-ui"></div>'
        f'<script id="versions" type="application/json">{_json_for_html(entries)}</script>'
        f'<script id="swagger-options" type="application/json">{_json_for_html(_SWAGGER_UI_OPTIONS)}</script>'
        f'<script src="{html.escape(assets_url)}/swagger-ui-bundle.js"></script>'
        f"<script>{_SCRIPT}</script></body></html>"
    )


def _label(version: VersionLinks) -> str:
    if version.status == "current":
        return f"{version.name} (current)"
    sunset = f", sunset {version.sunset[:10]}" if version.sunset else ""
    return f"{version.name} ({version.status}{sunset})"


def _notes_for(version: VersionLinks, notes: Callable[[str, str], str]) -> str:
    if version.status != "deprecated":
        return ""
    if version.migration_guide:
        guide = html.escape(version.migration_guide)
        return f'<p>{html.escape(version.name)} is deprecated: see <a href="{guide}">its migration guide</a>.</p>'
    if version.successor is None:
        return f"<p>{html.escape(version.name)} is deprecated.</p>"
    return notes(version.name, version.successor.lstrip("/"))


def _other_links(versions: list[VersionLinks]) -> str:
    """Each version's own pages, for readers who want one version alone or ReDoc."""
    links = "".join(
        f"<li>{html.escape(version.name)}: "
        f'<a href="{html.escape(version.docs or "")}">Swagger UI</a> &middot; '
        f'<a href="{html.escape(version.redoc or "")}">ReDoc</a> &middot; '
        f'<a href="{html.escape(version.openapi or "")}">OpenAPI schema</a>'
        + (
            f" (use {html.escape(version.successor)} instead)"
            if version.successor and version.status != "current"
            else ""
        )
        + "</li>"
        for version in versions
    )
    return f'<nav><ul style="margin: 0">{links}</ul></nav>'


def _json_for_html(value: object) -> str:
    # Inside <script>, "</" would end the element: escape it the way JSON allows.
    return json.dumps(value).replace("</", "<\\/")
