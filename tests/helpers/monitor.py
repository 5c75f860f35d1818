"""Fixtures of the monitor page's browser tests: one Chromium per module, a
fresh context per test, a module server named ``srv`` (defined by each test
module) and peers connected to it. Import them into a test module."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest_asyncio
from playwright.async_api import Browser, Locator, async_playwright

from tests.helpers.browser import ARGS, CHROMIUM, NARROW, Tab, open_tab
from tests.helpers.client import Peer
from tests.helpers.fake_extension import FakeExtension
from tests.helpers.server import RunningServer


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield chromium
        await chromium.close()


@pytest_asyncio.fixture(loop_scope="module")
async def peers(srv: RunningServer) -> AsyncIterator[Callable[..., Peer]]:
    made: list[Peer] = []

    def make(**kwargs: object) -> Peer:
        peer = Peer(srv.url, **kwargs)  # type: ignore[arg-type]
        made.append(peer)
        return peer

    yield make
    for peer in made:
        await peer.close()


async def page_of(
    browser: Browser, srv: RunningServer, viewport: dict[str, int] | None = None
) -> AsyncIterator[Tab]:
    """A tab that, once the test is done, must have seen no page error, no
    alert, no failed request, and the admin key in no URL and no log line."""
    tab = await open_tab(browser, srv.url, viewport)
    try:
        yield tab
    finally:
        await tab.context.close()
    key = srv.keys["admin"]
    assert not tab.errors, tab.errors
    assert not tab.dialogs, tab.dialogs
    assert not tab.failed, tab.failed  # every module, stylesheet and call was found
    assert not [u for u in tab.urls if key in u]
    assert not [m for m in tab.console if key in m]


@pytest_asyncio.fixture(loop_scope="module")
async def tab(browser: Browser, srv: RunningServer) -> AsyncIterator[Tab]:
    async for t in page_of(browser, srv):
        yield t


@pytest_asyncio.fixture(loop_scope="module")
async def narrow_tab(browser: Browser, srv: RunningServer) -> AsyncIterator[Tab]:
    async for t in page_of(browser, srv, NARROW):
        yield t


async def login(tab: Tab, srv: RunningServer) -> None:
    await tab.login("admin", srv.keys["admin"])


async def ask_in_traffic(
    tab: Tab, ext: FakeExtension, extension: str, text: str
) -> tuple[dict[str, Any], Locator]:
    """Send ``text`` to ``extension`` from the live traffic view; the request
    as the extension got it, and the page's article for it."""
    page = tab.page
    await tab.view("traffic")
    await page.select_option("#traffic-extension", extension)
    await page.fill("#traffic-input", text)
    await page.click("#traffic-send")
    request = await ext.next_request()
    article = f'#traffic-messages article[data-request-id="{request["requestId"]}"]'
    return request, page.locator(article)
