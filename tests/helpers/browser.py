"""Debian's Chromium through Playwright (no browser download) and a small
wrapper around a page of the monitor."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, BrowserContext, Page, expect

CHROMIUM = "/usr/bin/chromium"
# we run as root in a container: no sandbox; nothing may reach the network
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "monitor"
DESKTOP = {"width": 1280, "height": 800}
NARROW = {"width": 420, "height": 800}


@dataclass
class Tab:
    """One monitor page with everything it said or tried."""

    page: Page
    context: BrowserContext
    base: str
    dialogs: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # responses >= 400 (a missing module...)

    async def login(self, client_id: str, key: str) -> None:
        page = self.page
        await page.goto(self.base + "/")
        await expect(page.locator("#login")).to_be_visible()
        await page.fill("#login-client", client_id)
        await page.fill("#login-key", key)
        await page.click("#login-submit")
        await expect(page.locator("#app")).to_be_visible()
        await expect(page.locator("#conn-state")).to_have_text("connected")

    async def view(self, name: str) -> None:
        """Open a view through the navigation (the narrow menu is opened if needed)."""
        page = self.page
        toggle = page.locator("#nav-toggle")
        if await toggle.is_visible():
            await toggle.click()
        await page.click(f'#nav a[data-view="{name}"]')
        await expect(page.locator(f"#view-{name}")).to_be_visible()

    async def confirm(self) -> None:
        dialog = self.page.locator("#confirm-dialog")
        await expect(dialog).to_be_visible()
        await self.page.click("#confirm-ok")
        await expect(dialog).to_be_hidden()

    async def shot(self, name: str, *, full_page: bool = True) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        if full_page:
            await self.page.evaluate("window.scrollTo(0, 0)")
        await self.page.screenshot(path=str(path), full_page=full_page)
        return path

    def row(self, container: str, attr: str, value: str) -> Any:
        return self.page.locator(f'{container} tr[data-{attr}="{css_string(value)}"]')


def css_string(value: str) -> str:
    return re.sub(r'(["\\])', r"\\\1", value)


async def open_tab(browser: Browser, base: str, viewport: dict[str, int] | None = None) -> Tab:
    context = await browser.new_context(viewport=viewport or DESKTOP)
    await context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    page = await context.new_page()
    tab = Tab(page, context, base)

    async def on_dialog(dialog: Any) -> None:
        tab.dialogs.append(f"{dialog.type}: {dialog.message}")
        await dialog.dismiss()

    page.on("dialog", on_dialog)
    page.on("console", lambda m: tab.console.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: tab.errors.append(str(e)))
    page.on("request", lambda r: tab.urls.append(r.url))
    page.on("websocket", lambda ws: tab.urls.append(ws.url))

    def on_response(response: Any) -> None:
        if response.status >= 400:
            tab.failed.append(f"{response.status} {response.url}")

    page.on("response", on_response)
    page.on("requestfailed", lambda r: tab.failed.append(f"failed {r.url}"))
    return tab
