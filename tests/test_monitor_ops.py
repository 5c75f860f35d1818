"""The monitor page as an operator uses it (issue 18): request states and
traces, trend charts from real traffic, the audit trail of admin actions,
search and paging with 1,000 trust entries, confirmations, and the details
(theme, toasts, narrow layout, gone clients' rooms, big histories).

Screenshots of every view at 1280 and 420 px go to test-artifacts/monitor/.
"""

from __future__ import annotations

import asyncio
import re
import statistics
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from playwright.async_api import Browser, expect

from newage.domain.ports.records import TrustEntry
from newage.protocol.names import ClientKind
from tests.helpers.actors import connect, fake_extension, room
from tests.helpers.browser import NARROW, Tab
from tests.helpers.client import Peer
from tests.helpers.monitor import ask_in_traffic, browser, login, narrow_tab, page_of, peers, tab
from tests.helpers.server import RunningServer
from tests.helpers.wait import eventually

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]
__all__ = ["browser", "narrow_tab", "peers", "tab"]  # fixtures used by name

SETTINGS = {"metricsSampleMs": 300, "streamCoalesceMs": 0}
NONE = "\u2013"  # what the page shows for "no value"


def span(first: int, last: int, total: int) -> str:
    """What a pager says, e.g. 1-50 of 1001 (with an en dash)."""
    return f"{first}\u2013{last} of {total}"


VIEWS = (
    "dashboard",
    "clients",
    "rooms",
    "policy",
    "traffic",
    "requests",
    "trends",
    "events",
    "logs",
)


# ---------------------------------------------------------------------- fixtures
@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def srv(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningServer]:
    server = RunningServer(tmp_path_factory.mktemp("monitor-ops") / "data", dict(SETTINGS))
    await server.start()
    server.keys["admin"] = await server.client("admin", ClientKind.MONITOR)
    yield server
    await server.stop()


async def cancel_dialog(tab: Tab, title: str) -> None:
    dialog = tab.page.locator("#confirm-dialog")
    await expect(dialog).to_be_visible()
    await expect(tab.page.locator("#confirm-title")).to_have_text(title)
    await dialog.get_by_role("button", name="Cancel").click()
    await expect(dialog).to_be_hidden()


async def boss(server: RunningServer, peers) -> Peer:
    return await connect(server, peers, "admin", ClientKind.MONITOR, namespaces=("/rooms",))


# ---------------------------------------------------------------------- 1. request states
async def test_request_states_queued_streaming_completed_failed_and_trace(
    tab: Tab, srv: RunningServer, peers
):
    ext = await fake_extension(srv, peers, "SillyTavern-states")
    web = await connect(srv, peers, "web-states")
    await connect(srv, peers, "guest-states")
    admin = await boss(srv, peers)
    await room(admin, "held-states", {"guest-states": "guest"}, mode="HostSubmit")
    guest = await connect(srv, peers, "guest-states")
    await login(tab, srv)
    page = tab.page
    await tab.view("requests")

    # HostSubmit: a guest's request waits for the master
    ack = await guest.call(
        "/llm", "LLM_REQUEST", {"requestId": "st-held", "message": "x", "targetRoom": "held-states"}
    )
    assert ack["queued"] is True, ack
    held = page.locator('#requests-table tr[data-request-id="st-held"]')
    await expect(held).to_have_attribute("data-state", "queued")
    await expect(held).to_contain_text("HostSubmit")

    # forwarded -> streaming -> completed, live
    ack = await web.call("/llm", "LLM_REQUEST", {"requestId": "st-ok", "message": "Hi"})
    assert ack["forwarded"] is True, ack
    row = page.locator('#requests-table tr[data-request-id="st-ok"]')
    await expect(row).to_have_attribute("data-state", "processing")
    await expect(row.locator('.chip[data-state="pending"]')).to_have_text("SillyTavern-states")
    await ext.next_request(predicate=lambda p: p["requestId"] == "st-ok")
    output = "out-st-ok"
    await ext.token(output, "Hel", first=True, request_id="st-ok")
    await expect(row).to_have_attribute("data-state", "streaming")
    # the extension is busy: the next request waits in its queue, with its place
    await web.call("/llm", "LLM_REQUEST", {"requestId": "st-wait", "message": "next"})
    waiting = page.locator('#requests-table tr[data-request-id="st-wait"]')
    await expect(waiting).to_have_attribute("data-state", "queued")
    await expect(waiting.locator(".req-state")).to_have_text("queued #1")
    await tab.shot("requests-streaming")
    await ext.token(output, "lo", first=False, request_id="st-ok", final=True)
    await expect(row).to_have_attribute("data-state", "completed")
    await expect(waiting).to_have_attribute("data-state", "processing")
    await ext.next_request(predicate=lambda p: p["requestId"] == "st-wait")
    await ext.message("done waiting", request_id="st-wait")
    await expect(waiting).to_have_attribute("data-state", "completed")
    await expect(row.locator('.chip[data-state="completed"]')).to_have_text("SillyTavern-states")
    await expect(row.locator("td.num").nth(2)).to_have_text("2")  # tokens

    # -> failed, with the reason
    await web.call("/llm", "LLM_REQUEST", {"requestId": "st-bad", "message": "Hi"})
    await ext.next_request(predicate=lambda p: p["requestId"] == "st-bad")
    await ext.error("the model is down")
    bad = page.locator('#requests-table tr[data-request-id="st-bad"]')
    await expect(bad).to_have_attribute("data-state", "failed")
    await expect(bad).to_contain_text("the model is down")

    # the failed filter shows only it; the held filter only the queued one
    await page.select_option("#req-state", "failed")
    await expect(page.locator("#requests-table tbody tr")).to_have_count(1)
    await page.select_option("#req-state", "held")
    await expect(page.locator("#requests-table tbody tr")).to_have_count(1)
    await expect(held).to_be_visible()
    await page.select_option("#req-state", "")

    # a request opens its trace (and the trace is a deep link)
    await row.click()
    await expect(page).to_have_url(re.compile(r"#/requests/st-ok$"))
    events = page.locator("#trace-events li")
    await expect(events.first).to_have_attribute("data-event", "received")
    names = await events.evaluate_all("els => els.map(e => e.dataset.event)")
    assert names[:3] == ["received", "forwarded", "first output"], names
    assert "answer ended" in names and names[-1] == "completed", names
    await expect(page.locator("#request-trace")).to_contain_text("2 token(s)")
    await tab.shot("requests-trace")

    # the live traffic view shows the stage and links to the trace
    await page.goto(srv.url + "/#/traffic")
    await page.select_option("#traffic-room", "web-states")
    asked = page.locator('#traffic-messages article[data-request-id="st-bad"]')
    await expect(asked.locator(".req-status")).to_have_text("failed")
    await page.reload()
    await page.goto(srv.url + "/#/requests/st-bad")
    await expect(page.locator("#trace-id")).to_have_text("st-bad")
    await expect(page.locator("#request-trace")).to_contain_text("the model is down")


async def test_traffic_view_shows_where_a_request_stands(tab: Tab, srv: RunningServer, peers):
    ext = await fake_extension(srv, peers, "SillyTavern-stage")
    await login(tab, srv)
    page = tab.page
    request, asked = await ask_in_traffic(tab, ext, "SillyTavern-stage", "where are you")
    await expect(asked.locator(".req-detail")).to_contain_text("→ SillyTavern-stage")
    await ext.stream(["a", "b", "c"], request_id=request["requestId"], final=True)
    await expect(asked.locator(".req-status")).to_have_text("completed")
    await expect(asked.locator(".req-detail")).to_contain_text("3 token(s)")
    await expect(asked.locator(".req-detail")).to_contain_text("first token")
    await asked.locator("a.req-trace").click()
    await expect(page.locator("#trace-id")).to_have_text(request["requestId"])


# ---------------------------------------------------------------------- 2. trends
async def test_trend_charts_are_drawn_from_real_traffic(tab: Tab, srv: RunningServer, peers):
    ext = await fake_extension(srv, peers, "SillyTavern-trend")
    web = await connect(srv, peers, "web-trend")
    await login(tab, srv)
    page = tab.page
    await tab.view("trends")
    for i in range(3):
        await web.call("/llm", "LLM_REQUEST", {"requestId": f"tr-{i}", "message": "Hi"})
        await ext.next_request(predicate=lambda p, i=i: p["requestId"] == f"tr-{i}")
        await ext.stream(["x", "y", "z"], request_id=f"tr-{i}", final=True)
    # the charts are uPlot canvases whose data came from the server's samples
    for chart in ("requests", "tokens", "ttft", "load"):
        await expect(page.locator(f"#chart-{chart} canvas")).to_have_count(1)
    tokens = page.locator("#chart-tokens")
    await expect(tokens).to_have_attribute("data-max", re.compile(r"^[1-9]"), timeout=15000)
    await expect(page.locator("#chart-requests")).to_have_attribute(
        "data-max", re.compile(r"^[0-9.]*[1-9]")
    )
    await expect(page.locator("#chart-ttft")).to_have_attribute("data-max", re.compile(r"\d"))
    ext_row = tab.row("#extensions-table", "identity", "SillyTavern-trend")
    await expect(ext_row.locator("td.num").nth(1)).to_have_text("3")  # served
    await expect(ext_row).to_contain_text("idle")
    assert await ext_row.locator("td").last.inner_text() != NONE  # last answer
    await expect(page.locator("#trends-totals")).to_contain_text("request(s)")
    await page.select_option("#trends-window", "300")
    await tab.shot("trends")


# ---------------------------------------------------------------------- 3. audit trail
async def test_every_admin_action_lands_in_the_events_view(tab: Tab, srv: RunningServer, peers):
    await connect(srv, peers, "web-audited")
    await login(tab, srv)
    page = tab.page

    await tab.view("clients")  # a trust entry and its key in one step
    await page.fill("#trust-client-id", "tool-audited")
    await page.check("#trust-with-key")
    await page.click('#trust-form button[type="submit"]')
    await expect(page.locator("#key-dialog")).to_be_visible()
    await page.click("#key-done")
    row = tab.row("#trust-table", "client-id", "tool-audited")
    await expect(row.locator(".fingerprint")).to_be_visible()
    await row.get_by_role("button", name="Revoke key").click()
    await tab.confirm()
    await expect(row).to_contain_text("no key")
    await row.get_by_role("button", name="Remove trust").click()
    await tab.confirm()
    await expect(row).to_have_count(0)

    await tab.view("rooms")
    await page.fill("#room-name", "audit-room")
    await page.click('#room-create button[type="submit"]')
    await expect(page.locator("#room-detail-name")).to_have_text("audit-room")
    await page.fill("#member-identity", "web-audited")
    await page.click('#member-add button[type="submit"]')
    member = tab.row("#member-table", "identity", "web-audited")
    await member.locator("select").select_option("manager")
    await expect(member.locator("select")).to_have_value("manager")
    await member.get_by_role("button", name="Mute").click()
    await expect(member).to_contain_text("muted")
    await member.get_by_role("button", name="Unmute").click()
    await expect(member).not_to_contain_text("muted")
    await page.select_option("#room-mode", "MasterOnly")
    await page.click("text=Apply mode")
    await expect(page.locator("#room-detail")).to_contain_text("MasterOnly")
    await member.get_by_role("button", name="Kick").click()
    await tab.confirm()
    await expect(member).to_have_count(0)

    await tab.view("logs")
    await page.click("#debug-toggle")
    await expect(page.locator("#debug-state")).to_have_text("on")
    await page.click("#debug-toggle")
    await expect(page.locator("#debug-state")).to_have_text("off")

    await tab.view("events")
    table = page.locator("#events-table")
    for action, target in [
        ("trust.add", "tool-audited"),
        ("key.create", "tool-audited"),
        ("key.revoke", "tool-audited"),
        ("trust.remove", "tool-audited"),
        ("room.create", "audit-room"),
        ("member.add", "web-audited"),
        ("member.role", "web-audited"),
        ("member.mute", "web-audited"),
        ("member.unmute", "web-audited"),
        ("room.mode", "audit-room"),
        ("member.kick", "web-audited"),
        ("settings.change", "debugMode"),
    ]:
        entry = table.locator(f'tr[data-action="{action}"]', has_text=target).first
        await expect(entry).to_contain_text("admin")
    await tab.shot("events")

    await page.select_option("#ev-action", "member")
    await expect(table.locator('tr[data-action="trust.add"]')).to_have_count(0)
    actions = await table.locator("tbody tr").evaluate_all("rs => rs.map(r => r.dataset.action)")
    assert actions and all(a.startswith("member.") for a in actions), actions
    await page.select_option("#ev-action", "")
    await page.fill("#ev-search", "audit-room")
    await expect(table.locator("tbody tr").first).to_contain_text("audit-room")
    actions = await table.locator("tbody tr").evaluate_all("rs => rs.map(r => r.dataset.action)")
    assert set(actions) <= {
        "room.create",
        "room.mode",
        "member.add",
        "member.role",
        "member.mute",
        "member.unmute",
        "member.kick",
    }, actions

    # a refused login is a warning, shown with the warnings filter
    intruder = peers()
    with pytest.raises(Exception, match="Invalid key"):
        await intruder.open("/llm", {"clientId": "web-audited", "key": "wrong"})
    await page.fill("#ev-search", "")
    await page.select_option("#ev-level", "warn")
    await expect(table.locator('tr[data-action="login.refused"]').first).to_contain_text(
        "web-audited"
    )
    levels = await table.locator("tbody tr").evaluate_all("rs => rs.map(r => r.dataset.level)")
    assert levels and set(levels) <= {"warn", "error"}, levels


# ---------------------------------------------------------------------- 4. find things
MEASURE = """async (button) => {
  const box = document.querySelector('#clients-trusted');
  const tasks = [];
  const po = new PerformanceObserver((l) => { for (const e of l.getEntries()) tasks.push(e.duration); });
  po.observe({ type: 'longtask', buffered: false });
  const done = new Promise((resolve) => {
    const mo = new MutationObserver(() => { mo.disconnect(); resolve(performance.now()); });
    mo.observe(box, { childList: true, subtree: true, characterData: true });
  });
  const t0 = performance.now();
  document.querySelector(button).click();
  const changed = await Promise.race([done, new Promise((r) => setTimeout(() => r(null), 3000))]);
  await new Promise((r) => requestAnimationFrame(() => setTimeout(r, 50)));
  po.disconnect();
  return { render: changed === null ? null : changed - t0, longest: Math.max(0, ...tasks),
           rows: document.querySelectorAll('#trust-table tbody tr').length };
}"""


async def test_search_sort_paging_and_deep_links_with_1000_trust_entries(
    browser: Browser, tmp_path
):
    server = RunningServer(tmp_path / "data", dict(SETTINGS))
    await server.start()
    try:
        assert server.app is not None
        key = server.keys["admin"] = await server.client("admin", ClientKind.MONITOR)
        when = "2026-12-01T09:00:00.000Z"
        for i in range(1000):
            await server.app.store.put_trust(
                TrustEntry(f"bulk-{i:04d}", created_at=when, updated_at=when)
            )
        for i in range(0, 1000, 4):
            await server.app.keys.create(f"bulk-{i:04d}")
        await server.app.credentials.refresh()
        async for big_tab in page_of(browser, server):
            page = big_tab.page
            await big_tab.login("admin", key)
            await big_tab.view("clients")
            where = page.locator("#trust-table-where")
            entries = len(await server.app.trust.list())
            assert entries > 1000
            await expect(where).to_have_text(span(1, 50, entries))
            rows = page.locator("#trust-table tbody tr")
            await expect(rows).to_have_count(50)

            # a refresh redraws only what changed (here nothing), and a page
            # of 50 rows is quick to draw
            refresh = [await page.evaluate(MEASURE, "#trust-refresh") for _ in range(3)]
            paging = []
            for button in ["#trust-table-next", "#trust-table-prev"] * 2:
                paging.append(await page.evaluate(MEASURE, button))
            print("1,000 trust entries: refresh", refresh, "page switch", paging)
            assert all(m["render"] is None for m in refresh), refresh  # nothing redrawn
            assert all(m["rows"] == 50 for m in refresh + paging)
            assert statistics.median(m["render"] for m in paging) < 250, paging
            assert statistics.median(m["longest"] for m in refresh + paging) < 200

            await page.fill("#trust-table-search", "bulk-0999")
            await expect(rows).to_have_count(1)
            await expect(where).to_have_text(span(1, 1, 1))
            await page.fill("#trust-table-search", "")
            await page.click("#trust-table-next")
            await expect(where).to_have_text(span(51, 100, entries))
            await expect(page.locator("#trust-table-prev")).to_be_enabled()
            await page.select_option("#trust-filter", "nokey")
            await expect(where).to_have_text(span(1, 50, entries - 251))  # 250 bulk keys + admin
            await page.select_option("#trust-filter", "all")
            sort = page.locator('#trust-table th button[data-col="0"]')
            await sort.click()
            await sort.click()  # descending
            await expect(rows.first).to_have_attribute("data-client-id", "bulk-0999")
            await big_tab.shot("clients-1000")

            # deep links: a client on page 15, a room
            await page.goto(server.url + "/#/clients/bulk-0700")
            target = big_tab.row("#trust-table", "client-id", "bulk-0700")
            await expect(target).to_be_visible()
            await expect(target).to_have_class(re.compile("selected"))
            await expect(where).to_contain_text(f"of {entries}")

            admin = Peer(server.url)
            try:
                from tests.helpers.client import auth

                await admin.open("/rooms", auth("admin", key, clientType="monitor"))
                for i in range(60):
                    ack = await admin.call("/rooms", "CREATE_ROOM", {"roomName": f"team-{i:02d}"})
                    assert ack["status"] == "ok", ack
            finally:
                await admin.close()
            await page.goto(server.url + "/#/rooms/team-42")
            await expect(page.locator("#room-detail-name")).to_have_text("team-42")
            await page.fill("#room-table-search", "team-4")
            await expect(page.locator("#room-table tbody tr")).to_have_count(10)
            await page.fill("#room-table-search", "")
            await expect(page.locator("#room-table-where")).to_have_text(span(1, 25, 62))
            await page.fill("#member-table-search", "nobody-here")
            await expect(page.locator("#member-table tbody tr.empty")).to_have_count(1)
    finally:
        await server.stop()


async def test_logs_search_and_a_big_room_pages_from_the_end(tab: Tab, srv: RunningServer, peers):
    assert srv.app is not None
    await connect(srv, peers, "web-big")
    for i in range(180):
        await srv.app.history.system("web-big", f"big line {i:03d}")
    log_dir = srv.data_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    lines = [
        f"2026-11-25 10:00:{i % 60:02d} - info - entry {i} {'needle' if i % 7 == 0 else ''}"
        for i in range(70)
    ]
    (log_dir / "info.log").write_text("\n".join(lines) + "\n", encoding="utf-8")
    await login(tab, srv)
    page = tab.page

    await tab.view("traffic")
    await page.select_option("#traffic-room", "web-big")
    count = page.locator("#traffic-count")
    await expect(count).to_have_text(re.compile(r"^50 of 1\d\d message\(s\)$"))
    log = page.locator("#traffic-messages")
    await expect(log).to_contain_text("big line 179")
    await expect(log).not_to_contain_text("big line 100")
    await page.locator("#traffic-log").evaluate(
        "el => { el.scrollTop = 0; el.dispatchEvent(new Event('scroll')); }"
    )
    await expect(count).to_have_text(re.compile(r"^100 of 1\d\d message\(s\)$"))
    await expect(log).to_contain_text("big line 100")

    await tab.view("logs")
    await page.select_option("#log-file", "info.log")
    await page.fill("#log-search", "needle")
    await expect(page.locator("#log-where")).to_have_text("page 1 of 1 · 10 entries")
    for text in await page.locator("#log-entries pre").all_inner_texts():
        assert "needle" in text


# ---------------------------------------------------------------------- 5. safe actions
async def test_risky_actions_ask_first(tab: Tab, srv: RunningServer, peers):
    assert srv.app is not None
    await connect(srv, peers, "web-safe")
    await login(tab, srv)
    page = tab.page
    rooms = srv.app.rooms

    await tab.view("rooms")
    await page.fill("#room-name", "safe-room")
    await page.click('#room-create button[type="submit"]')
    await expect(page.locator("#room-detail-name")).to_have_text("safe-room")

    # adding a member nobody knows warns
    await page.fill("#member-identity", "nobody-known-xyz")
    await page.click('#member-add button[type="submit"]')
    await cancel_dialog(tab, "Unknown identity")
    assert rooms.rooms["safe-room"].role("nobody-known-xyz") is None
    await page.click('#member-add button[type="submit"]')
    await tab.confirm()
    await expect(tab.row("#member-table", "identity", "nobody-known-xyz")).to_have_count(1)

    # demoting the master
    me = tab.row("#member-table", "identity", "admin")
    await me.locator("select").select_option("manager")
    await cancel_dialog(tab, "Demote the master")
    await expect(me.locator("select")).to_have_value("master")
    assert rooms.rooms["safe-room"].role("admin").value == "master"
    await me.locator("select").select_option("manager")
    await tab.confirm()
    await eventually(lambda: rooms.rooms["safe-room"].role("admin").value == "manager")

    # replacing an existing key, and revoking one's own
    await tab.view("clients")
    await page.fill("#trust-client-id", "tool-safe")
    await page.click('#trust-form button[type="submit"]')
    row = tab.row("#trust-table", "client-id", "tool-safe")
    await row.get_by_role("button", name="Generate key").click()  # none yet: no question
    await page.click("#key-done")
    before = [r.fingerprint for r in await srv.app.keys.list() if r.client_id == "tool-safe"]
    await row.get_by_role("button", name="New key").click()
    await cancel_dialog(tab, "Replace key")
    assert [
        r.fingerprint for r in await srv.app.keys.list() if r.client_id == "tool-safe"
    ] == before
    await row.get_by_role("button", name="New key").click()
    await tab.confirm()
    await expect(page.locator("#key-dialog")).to_be_visible()
    await page.click("#key-done")
    after = [r.fingerprint for r in await srv.app.keys.list() if r.client_id == "tool-safe"]
    assert after and after != before

    mine = tab.row("#trust-table", "client-id", "admin")
    await mine.get_by_role("button", name="Revoke key").click()
    await expect(page.locator("#confirm-text")).to_contain_text("this page signed in with")
    await cancel_dialog(tab, "Revoke your own key")
    assert any(r.client_id == "admin" for r in await srv.app.keys.list())
    await expect(page.locator("#conn-state")).to_have_text("connected")
    await tab.shot("confirm-own-key", full_page=False)


# ---------------------------------------------------------------------- 6. details
async def test_theme_switch_toasts_scroll_dates_and_gone_clients(
    tab: Tab, srv: RunningServer, peers
):
    assert srv.app is not None
    gone = await connect(srv, peers, "web-gone-away")
    await gone.call("/llm", "LLM_REQUEST", {"requestId": "gone-1", "message": "a trace"})
    await gone.close()
    await eventually(lambda: not srv.app.presence.is_present("web-gone-away"))  # type: ignore[union-attr]
    assert "web-gone-away" in srv.app.rooms.rooms
    await connect(srv, peers, "web-here-now")
    await login(tab, srv)
    page = tab.page

    # a manual theme, kept across reloads
    initial = await page.locator("#theme-toggle").get_attribute("data-theme")
    await page.click("#theme-toggle")
    flipped = "light" if initial == "dark" else "dark"
    await expect(page.locator("html")).to_have_attribute("data-theme", flipped)
    assert await page.evaluate("localStorage.getItem('newage.monitor.theme')") == flipped
    await page.reload()
    await expect(page.locator("#app")).to_be_visible()
    await expect(page.locator("html")).to_have_attribute("data-theme", flipped)
    await tab.shot(f"theme-{flipped}")

    # personal rooms of gone clients are hidden until asked for
    await tab.view("rooms")
    await expect(tab.row("#room-table", "room", "web-here-now")).to_have_count(1)
    await expect(tab.row("#room-table", "room", "web-gone-away")).to_have_count(0)
    await page.check("#room-show-gone")
    await expect(tab.row("#room-table", "room", "web-gone-away")).to_contain_text("gone")

    # a view opens at its top
    await page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    await tab.view("clients")
    assert await page.evaluate("window.scrollY") == 0

    # a mute ending another day shows its date
    await tab.view("rooms")
    await tab.row("#room-table", "room", "web-here-now").click()
    await page.fill("#mute-amount", "50")
    await page.select_option("#mute-unit", "3600")
    member = tab.row("#member-table", "identity", "web-here-now")
    await member.get_by_role("button", name="Mute").click()
    await expect(member).to_contain_text(re.compile(r"muted until \d{4}-\d{2}-\d{2} \d{2}:\d{2}"))

    # toasts are a row of the top bar: they push the page down and cover no button
    toasts = page.locator("#toasts .toast")
    await expect(toasts.first).to_be_visible()
    await page.evaluate("window.scrollTo(0, 0)")
    overlaps = await page.evaluate(
        """() => {
          const bar = document.querySelector('.topbar').getBoundingClientRect();
          const boxes = [...document.querySelectorAll('#toasts .toast')].map(t => t.getBoundingClientRect());
          const inside = boxes.every(t => t.top >= bar.top && t.bottom <= bar.bottom);
          const hit = (a, b) => a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
          const covered = [...document.querySelectorAll('button')]
            .filter(b => !b.closest('.topbar') && b.offsetParent !== null)
            .filter(b => boxes.some(t => hit(t, b.getBoundingClientRect()))).map(b => b.textContent);
          return inside ? covered : ['a toast outside the top bar'];
        }"""
    )
    assert overlaps == [], overlaps
    # and go when the connection comes back (the server restarts)
    stopping = asyncio.create_task(srv.restart())
    await expect(page.locator("#conn-state")).not_to_have_text("connected", timeout=15000)
    await stopping
    await expect(page.locator("#conn-state")).to_have_text("connected", timeout=20000)
    await expect(toasts).to_have_count(0)


async def test_narrow_layout_shows_action_buttons(narrow_tab: Tab, srv: RunningServer, peers):
    tab = narrow_tab
    await connect(srv, peers, "web-narrow-actions", desc="a long description " * 4)
    await login(tab, srv)
    await tab.view("clients")
    row = tab.row("#connected-table", "identity", "web-narrow-actions")
    button = row.get_by_role("button", name="Disconnect")
    await expect(button).to_be_visible()
    box = await button.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= NARROW["width"], box
    trust_button = tab.row("#trust-table", "client-id", "admin").get_by_role(
        "button", name="Revoke key"
    )
    box = await trust_button.bounding_box()
    assert box is not None and box["x"] + box["width"] <= NARROW["width"], box


# ---------------------------------------------------------------------- screenshots
@pytest.mark.parametrize("width", [1280, 420])
async def test_screenshots_of_every_view(browser: Browser, srv: RunningServer, peers, width):
    ext = await fake_extension(srv, peers, f"SillyTavern-shot-{width}")
    web = await connect(srv, peers, f"web-shot-{width}", desc="screenshot client")
    await web.call("/llm", "LLM_REQUEST", {"requestId": f"shot-{width}", "message": "Hello"})
    await ext.next_request(predicate=lambda p: p["requestId"] == f"shot-{width}")
    await ext.stream(["Hi", " there"], request_id=f"shot-{width}", final=True)
    async for view_tab in page_of(browser, srv, {"width": width, "height": 900}):
        await login(view_tab, srv)
        page = view_tab.page
        for name in VIEWS:
            await view_tab.view(name)
            if name == "trends":
                await expect(page.locator("#chart-load canvas")).to_have_count(1)
            await asyncio.sleep(0.3)  # let a view's first load paint
            width_now = await page.evaluate("document.documentElement.scrollWidth")
            assert width_now <= width, (name, width_now)
            await view_tab.shot(f"view-{name}-{width}")
