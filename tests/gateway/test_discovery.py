"""Discovery: every URL the gateway advertises answers, and none is built from the client's Host."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from gateway.settings import Settings
from tests.conftest import PROBE_FACTORY, catalog_versions, open_client, probe_version

pytestmark = pytest.mark.anyio

HOSTILE_HOST = "evil.example:1234"
_LINK_TARGET = re.compile(r"<([^>]*)>")
_HREF = re.compile(r'href="([^"]+)"')
# Values of these keys name a version (its prefix), not a resource to fetch.
_PREFIX_KEYS = frozenset({"prefix", "successor"})
# A walk that has not ended after this many URLs is following something it should not.
_MOST_URLS = 100


def advertising_versions() -> list[Any]:
    """v1 (deprecated, successor v2), v2 (current) and a version past its sunset."""
    gone = probe_version(
        "/v0",
        factory=PROBE_FACTORY,
        status="sunset",
        deprecated_at="2025-01-01T00:00:00Z",
        sunset_at="2026-01-01T00:00:00Z",
        successor="/v2",
    )
    return [gone, *catalog_versions()]


def _urls_in_json(document: Any, key: str | None = None) -> Iterator[str]:
    if isinstance(document, dict):
        for name, value in document.items():
            yield from _urls_in_json(value, name)
    elif isinstance(document, list):
        for value in document:
            yield from _urls_in_json(value, key)
    elif isinstance(document, str) and key not in _PREFIX_KEYS and document.startswith(("/", "http")):
        yield document


def _advertised_in(response: httpx.Response, read_body: bool) -> list[str]:
    """The Link header targets of ``response`` and, when ``read_body``, the links of its body."""
    targets = [
        target for value in response.headers.get_list("link") for target in _LINK_TARGET.findall(value)
    ]
    content_type = response.headers.get("content-type", "")
    if read_body and "json" in content_type:
        targets += _urls_in_json(response.json())
    elif read_body and content_type.startswith("text/html"):
        targets += _HREF.findall(response.text)
    return targets


async def walk_advertised_urls(
    client: httpx.AsyncClient, root_path: str, headers: dict[str, str] | None = None
) -> dict[str, httpx.Response]:
    """Fetch the index, the API catalog, every URL they name, and every Link header target,
    following redirects; the bodies of the discovery documents and of the pages they name
    are read for links (not those of the docs pages and schemas they lead to)."""
    start = [f"{root_path}/", f"{root_path}/.well-known/api-catalog"]
    # Every response under a version's prefix carries its Link headers, a gone version's 410 too.
    sources = [f"{root_path}/v0/", f"{root_path}/v1/items", f"{root_path}/v2/items"]
    for source in sources:
        response = await client.get(source, headers=headers)
        start += _advertised_in(response, read_body=False)
    responses: dict[str, httpx.Response] = {}
    queue = [(client.base_url.join(target), 0) for target in start]
    while queue:
        url, depth = queue.pop(0)
        url = url.copy_with(fragment=None)
        if str(url) in responses:
            continue
        assert len(responses) < _MOST_URLS, f"the walk did not end: {sorted(responses)}"
        assert url.host == client.base_url.host, f"{url} is not the gateway's"
        response = await client.get(url, headers=headers, follow_redirects=True)
        responses[str(url)] = response
        queue += [(response.url.join(target), depth + 1) for target in _advertised_in(response, depth < 2)]
    return responses


@pytest.mark.parametrize("root_path", ["", "/api"])
async def test_every_url_the_gateway_advertises_answers(
    make_settings: Callable[..., Settings], root_path: str
) -> None:
    async for client in open_client(make_settings(versions=advertising_versions()), root_path):
        responses = await walk_advertised_urls(client, root_path)
        failures = {
            url: response.status_code for url, response in responses.items() if not response.is_success
        }
        assert not failures, failures
        walked = {httpx.URL(url).path for url in responses}
        for prefix in ("/v1", "/v2"):
            assert {
                f"{root_path}{prefix}/",
                f"{root_path}{prefix}/docs",
                f"{root_path}{prefix}/openapi.json",
            } <= walked
        assert not any(path.startswith(f"{root_path}/v0") for path in walked), "a gone version is advertised"


@pytest.mark.parametrize("root_path", ["", "/api"])
async def test_a_versions_root_describes_it(make_settings: Callable[..., Settings], root_path: str) -> None:
    async for client in open_client(make_settings(versions=catalog_versions()), root_path):
        index = {
            version["name"]: version for version in (await client.get(f"{root_path}/")).json()["versions"]
        }
        for name in ("v1", "v2"):
            response = await client.get(f"{root_path}/{name}/")
            assert response.status_code == 200
            document = response.json()
            assert document["title"] == f"Items catalog {name}"
            assert {key: document[key] for key in index[name]} == index[name]
            assert document["docs"] == f"{root_path}/{name}/docs"
            bare = await client.get(f"{root_path}/{name}")
            assert bare.status_code == 307
            assert bare.headers["location"] == f"{root_path}/{name}/"
        v1 = (await client.get(f"{root_path}/v1/")).json()
        assert (v1["status"], v1["successor"]) == ("deprecated", "/v2")
        assert v1["sunset"] == "2099-01-01T00:00:00+00:00"


async def test_an_apps_own_root_route_is_kept(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(versions=[probe_version(factory="tests.versions.probe:create_app_with_root")])
    async for client in open_client(settings):
        assert (await client.get("/v3/")).json() == {"root": "probe"}


async def test_the_internal_docs_are_advertised_only_when_mounted(
    make_settings: Callable[..., Settings],
) -> None:
    async for client in open_client(make_settings()):
        assert "internal" not in (await client.get("/")).json()
    async for client in open_client(make_settings(internal_app="services.internal:create_app")):
        assert (await client.get("/")).json()["internal"] == "/internal/docs"


# Paths whose answer is a redirect: a version's bare prefix (the root router's), and a
# trailing slash too many at the root and in a version (each app's router).
_REDIRECTED = ("/v2", "/v2/items/", "/health/", "/v2/docs/")


@pytest.mark.parametrize("root_path", ["", "/api"])
async def test_no_response_names_the_host_the_client_sent(
    make_settings: Callable[..., Settings], root_path: str
) -> None:
    hostile = {"Host": HOSTILE_HOST}
    async for client in open_client(make_settings(versions=advertising_versions()), root_path):
        responses = list((await walk_advertised_urls(client, root_path, hostile)).values())
        for path in _REDIRECTED:
            response = await client.get(f"{root_path}{path}", headers=hostile, follow_redirects=True)
            assert response.history, f"{path} is not redirected"
            responses.append(response)
        redirects = [earlier for response in responses for earlier in response.history]
        for response in [*responses, *redirects]:
            headers = "\n".join(f"{name}: {value}" for name, value in response.headers.multi_items())
            assert "evil.example" not in headers, f"{response.request.url}:\n{headers}"
            assert "evil.example" not in response.text, response.request.url
        catalog = (await client.get(f"{root_path}/.well-known/api-catalog", headers=hostile)).json()
        anchors = [entry["anchor"] for entry in catalog["linkset"]]
        assert anchors == [f"{root_path}/v1/", f"{root_path}/v2/"]


async def test_the_catalog_links_are_absolute_with_a_public_url(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(public_url="https://api.example.com")
    async for client in open_client(settings, root_path="/api"):
        response = await client.get("/api/.well-known/api-catalog", headers={"Host": HOSTILE_HOST})
        (entry,) = response.json()["linkset"]
        assert entry["anchor"] == "https://api.example.com/api/v3/"
        assert entry["service-desc"][0]["href"] == "https://api.example.com/api/v3/openapi.json"
        assert entry["status"][0]["href"] == "https://api.example.com/api/health"
