"""Each version's interactive docs in a real headless browser, with the network cut off.

Every request for a host other than 127.0.0.1 is aborted and recorded: the docs must work
on a network that cannot reach any CDN, from assets the gateway serves itself.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.e2e.conftest import PROXY_PREFIX
from tests.servers import LOOPBACK, BehindProxy, ServerProcess, loopback_client

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page, Route

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium")
WAIT_MS = 20_000
CHROMIUM_ARGUMENTS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    # Belt and braces besides the route guard: no proxy, and no host but 127.0.0.1 resolves.
    "--no-proxy-server",
    f"--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE {LOOPBACK}",
]
_HTTP_METHODS = {"get", "put", "post", "patch", "delete", "head", "options", "trace"}
# ReDoc 2.x renders "API docs by Redocly" with an <img> from this URL, whatever its options.
REDOCLY_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


@dataclass
class GuardedPage:
    page: Page
    blocked: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if CHROMIUM is None:
        pytest.skip(
            "Debian's chromium is not installed (apt-get install chromium); Playwright's own is not used"
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGUMENTS, timeout=WAIT_MS
        )
        yield browser
        browser.close()


@pytest.fixture
def guarded_page(browser: Browser) -> Iterator[GuardedPage]:
    context = browser.new_context(service_workers="block")
    context.set_default_timeout(WAIT_MS)
    context.set_default_navigation_timeout(WAIT_MS)
    guarded = GuardedPage(context.new_page())

    def allow_only_loopback(route: Route) -> None:
        if urlsplit(route.request.url).hostname == LOOPBACK:
            route.continue_()
        else:
            guarded.blocked.append(route.request.url)
            route.abort("blockedbyclient")

    context.route("**/*", allow_only_loopback)
    guarded.page.on("pageerror", lambda error: guarded.page_errors.append(str(error)))
    yield guarded
    context.close()


def schema_of(origin: str, prefix: str) -> dict[str, object]:
    with loopback_client(origin) as client:
        response = client.get(f"{prefix}/openapi.json")
    response.raise_for_status()
    return cast("dict[str, object]", response.json())


def operations_in(schema: dict[str, object]) -> set[tuple[str, str]]:
    paths = cast("dict[str, dict[str, object]]", schema["paths"])
    return {
        (method.upper(), path)
        for path, operations in paths.items()
        for method in operations
        if method in _HTTP_METHODS
    }


def title_of(schema: dict[str, object]) -> str:
    return cast("dict[str, str]", schema["info"])["title"]


def rendered_operations(page: Page) -> set[tuple[str, str]]:
    page.locator(".opblock").first.wait_for(state="visible")
    rendered = page.eval_on_selector_all(
        ".opblock",
        """blocks => blocks.map(block => [
            block.querySelector('.opblock-summary-method').textContent,
            block.querySelector('.opblock-summary-path').dataset.path,
        ])""",
    )
    return {(method, path) for method, path in cast("list[tuple[str, str]]", rendered)}


def operation_block(page: Page, method: str, path: str) -> Locator:
    return page.locator(f".opblock-{method.lower()}").filter(
        has=page.locator(f'.opblock-summary-path[data-path="{path}"]')
    )


def try_it_out(page: Page, method: str, path: str) -> tuple[str, str]:
    """Expand an operation, "Try it out", "Execute"; return the status shown and the URL called."""
    operation = operation_block(page, method, path)
    operation.locator(".opblock-summary-control").click()
    operation.get_by_role("button", name="Try it out").click()
    operation.get_by_role("button", name="Execute").click()
    status = operation.locator(".live-responses-table tbody .response-col_status")
    expect(status).not_to_be_empty(timeout=WAIT_MS)
    return status.inner_text().strip(), operation.locator(".request-url pre").inner_text().strip()


@pytest.mark.parametrize("prefix", ["/v1", "/v2"])
def test_swagger_ui_shows_the_versions_own_operations(
    catalog_server: ServerProcess, guarded_page: GuardedPage, prefix: str
) -> None:
    schema = schema_of(catalog_server.origin, prefix)
    page = guarded_page.page
    page.goto(f"{catalog_server.origin}{prefix}/docs")

    operations = rendered_operations(page)
    expect(page.locator(".info .title")).to_contain_text(title_of(schema))
    assert operations == operations_in(schema)
    assert guarded_page.blocked == []
    assert guarded_page.page_errors == []


def test_the_two_versions_docs_differ(catalog_server: ServerProcess) -> None:
    # Guards the test above against comparing one schema with itself.
    v1, v2 = (schema_of(catalog_server.origin, prefix) for prefix in ("/v1", "/v2"))
    assert title_of(v1) != title_of(v2)
    assert operations_in(v1) != operations_in(v2)


def test_try_it_out_calls_v2_on_the_gateway(catalog_server: ServerProcess, guarded_page: GuardedPage) -> None:
    page = guarded_page.page
    page.goto(f"{catalog_server.origin}/v2/docs")
    rendered_operations(page)

    status, request_url = try_it_out(page, "GET", "/items")

    assert status == "200"
    assert request_url.startswith(f"{catalog_server.origin}/v2/items")
    assert guarded_page.blocked == []


def test_try_it_out_behind_a_proxy_calls_through_the_root_path(
    catalog_server_behind_proxy: BehindProxy, guarded_page: GuardedPage
) -> None:
    origin = catalog_server_behind_proxy.origin
    page = guarded_page.page
    page.goto(f"{origin}{PROXY_PREFIX}/v2/docs")
    rendered_operations(page)

    status, request_url = try_it_out(page, "GET", "/items")

    assert status == "200"
    assert request_url.startswith(f"{origin}{PROXY_PREFIX}/v2/items")
    assert guarded_page.blocked == []


def test_redoc_renders_v1_from_local_assets(catalog_server: ServerProcess, guarded_page: GuardedPage) -> None:
    title = title_of(schema_of(catalog_server.origin, "/v1"))
    page = guarded_page.page
    page.goto(f"{catalog_server.origin}/v1/redoc")

    expect(page.get_by_role("heading", level=1)).to_contain_text(title)
    expect(page.get_by_role("heading", name="List items")).to_be_visible()
    # The Redocly logo is decoration that hides itself when it cannot load; see the next test.
    assert set(guarded_page.blocked) <= {REDOCLY_LOGO}
    assert guarded_page.page_errors == []


def test_redoc_asks_nothing_of_the_internet(catalog_server: ServerProcess, guarded_page: GuardedPage) -> None:
    page = guarded_page.page
    page.goto(f"{catalog_server.origin}/v1/redoc")
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    # The logo's <img> mounts with the menu's footer, and its request is issued a moment
    # later; "networkidle" cannot tell, as it may have been reached before ReDoc fetched
    # the schema. A fixed, short wait is the honest bound here.
    expect(page.get_by_role("link", name="API docs by Redocly")).to_be_attached()
    page.wait_for_timeout(1_000)
    assert guarded_page.blocked == []


def test_one_docs_page_switches_between_versions(
    catalog_server: ServerProcess, guarded_page: GuardedPage
) -> None:
    v1, v2 = (schema_of(catalog_server.origin, prefix) for prefix in ("/v1", "/v2"))
    page = guarded_page.page
    page.goto(f"{catalog_server.origin}/docs")

    # The current version first; the deprecated one is marked, with its sunset.
    assert rendered_operations(page) == operations_in(v2)
    labels = page.locator("#version option").all_inner_texts()
    assert labels[0].startswith("v1 (deprecated, sunset ")
    assert labels[1] == "v2 (current)"
    expect(page.locator("#migration")).to_be_hidden()

    page.select_option("#version", "v1")
    expect(page.locator(".info .title")).to_contain_text(title_of(v1))
    assert rendered_operations(page) == operations_in(v1)
    # No migration guide is configured: the changes to v2 stand in for one.
    expect(page.locator("#migration")).to_contain_text("Moving from v1 to v2")
    expect(page.locator("#migration")).to_contain_text("PUT /items/{item_id}: operation removed")
    assert page.url.endswith("/docs#v1")
    assert guarded_page.blocked == []
    assert guarded_page.page_errors == []


def test_the_deprecation_link_opens_the_docs_on_its_version(
    catalog_server: ServerProcess, guarded_page: GuardedPage
) -> None:
    with loopback_client(catalog_server.origin) as client:
        links = client.get("/v1/items").headers.get_list("link")
    (deprecation,) = [link for link in links if 'rel="deprecation"' in link]
    target = deprecation.split(">", 1)[0].lstrip("<")
    page = guarded_page.page
    page.goto(f"{catalog_server.origin}{target}")
    assert rendered_operations(page) == operations_in(schema_of(catalog_server.origin, "/v1"))
    expect(page.locator("#version")).to_have_value("v1")
    assert guarded_page.page_errors == []
