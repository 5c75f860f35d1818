"""The monitor page in Debian's Chromium: login, live dashboard, clients and
keys, rooms, policy, live traffic with streaming, logs and debug, XSS and a
narrow window.

One server and one browser serve the whole module (one event loop for the
module), each test gets a fresh browser context and its own names. Screenshots
of every view go to test-artifacts/monitor/.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
import pytest_asyncio
from playwright.async_api import expect

from newage import logs
from newage.protocol.names import ClientKind, RequestMode, Role
from tests.helpers.actors import connect, fake_extension
from tests.helpers.browser import NARROW, Tab
from tests.helpers.client import auth
from tests.helpers.monitor import ask_in_traffic, browser, login, narrow_tab, peers, tab
from tests.helpers.server import RunningServer

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]
__all__ = ["browser", "narrow_tab", "peers", "tab"]  # fixtures used by name

XSS_DESC = "<img src=x onerror=alert(1)>"
AUTH_ITEM = "newage.monitor.auth"


# ---------------------------------------------------------------------- fixtures
@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def srv(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningServer]:
    server = RunningServer(tmp_path_factory.mktemp("monitor") / "data")
    await server.start()
    server.keys["admin"] = await server.client("admin", ClientKind.MONITOR)
    yield server
    await server.stop()


async def eventually(check: Callable[[], bool], timeout: float = 5) -> None:
    for _ in range(int(timeout / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    assert check()


# ---------------------------------------------------------------------- login
async def test_login_errors_session_storage_and_logout(tab: Tab, srv: RunningServer):
    page = tab.page
    response = await page.goto(srv.url + "/")
    assert response is not None
    # never shown in a frame (the page's <meta> CSP cannot say so)
    assert response.headers["content-security-policy"] == "frame-ancestors 'none'"
    await expect(page.locator("#login")).to_be_visible()
    # the page's modules load the generated wire constants from /lib
    assert any(u.endswith("/lib/constants.js") for u in tab.urls), tab.urls
    await tab.shot("login")

    await page.fill("#login-client", "admin")
    await page.fill("#login-key", "not-the-key")
    await page.click("#login-submit")
    await expect(page.locator("#login-error")).to_have_text("Invalid key.")
    await expect(page.locator("#app")).to_be_hidden()
    assert await page.evaluate(f"sessionStorage.getItem('{AUTH_ITEM}')") is None
    await tab.shot("login-error")

    await page.fill("#login-client", "nobody")
    await page.fill("#login-key", "whatever")
    await page.click("#login-submit")
    await expect(page.locator("#login-error")).to_have_text("Client is not trusted.")

    key = srv.keys["admin"]
    await tab.login("admin", key)
    stored = json.loads(await page.evaluate(f"sessionStorage.getItem('{AUTH_ITEM}')"))
    assert stored["clientId"] == "admin" and stored["key"] == key
    assert key not in await page.evaluate("JSON.stringify(localStorage)")
    assert key not in page.url
    await expect(page.locator("#whoami")).to_have_text("admin")

    # a reload signs in again from sessionStorage
    await page.reload()
    await expect(page.locator("#app")).to_be_visible()
    await expect(page.locator("#conn-state")).to_have_text("connected")

    await page.click("#logout")
    await expect(page.locator("#login")).to_be_visible()
    await expect(page.locator("#app")).to_be_hidden()
    assert await page.evaluate(f"sessionStorage.getItem('{AUTH_ITEM}')") is None
    assert await page.input_value("#login-key") == ""


async def test_revoked_key_shows_a_banner_and_leads_back_to_login(
    tab: Tab, srv: RunningServer, peers
):
    key = await srv.client("admin-2", ClientKind.MONITOR)
    await tab.login("admin-2", key)
    page = tab.page
    admin = await connect(srv, peers, "admin", ClientKind.MONITOR, namespaces=("/clients",))
    ack = await admin.call("/clients", "REMOVE_CLIENT_KEY", {"targetClientId": "admin-2"})
    assert ack["status"] == "ok" and ack["disconnected"] >= 4, ack
    banner = page.locator("#banner")
    await expect(banner).to_be_visible()
    await expect(banner).to_contain_text(re.compile("closed this connection|Invalid key"))
    await expect(page.locator("#conn-state")).not_to_have_text("connected")
    await tab.shot("revoked")
    await banner.get_by_role("button", name="Sign in again").click()
    await expect(page.locator("#login")).to_be_visible()
    assert await page.evaluate(f"sessionStorage.getItem('{AUTH_ITEM}')") is None


# ---------------------------------------------------------------------- dashboard
async def test_dashboard_shows_extensions_and_clients_live(tab: Tab, srv: RunningServer, peers):
    await login(tab, srv)
    page = tab.page
    await expect(page.locator("#dash-uptime")).to_have_text(re.compile(r"\d+s"))
    await expect(page.locator("#dash-sessions")).to_have_text(re.compile(r"^\d+$"))
    await expect(tab.row("#dash-clients", "identity", "admin")).to_contain_text("you")

    await fake_extension(srv, peers, "SillyTavern-dash", desc="Fake tavern")
    web = await connect(srv, peers, "web-dash", desc="A web app")
    ext_row = tab.row("#dash-extensions", "identity", "SillyTavern-dash")
    await expect(ext_row).to_contain_text("Fake tavern")
    await expect(ext_row).to_contain_text("extension")
    web_row = tab.row("#dash-clients", "identity", "web-dash")
    await expect(web_row).to_contain_text("A web app")
    await expect(web_row).to_contain_text("web-app")
    # /rooms connects after the session started: pushed too (no re-fetch)
    await expect(web_row.locator("code.ns")).to_have_text(["/", "/llm", "/rooms"])
    await expect(page.locator("#dash-requests")).to_have_text("0")
    await expect(page.locator("#view-dashboard")).to_contain_text("/llm")
    await tab.shot("dashboard")

    await web.close()  # gone without a reload
    await expect(web_row).to_have_count(0)


# ---------------------------------------------------------------------- clients and keys
async def test_trust_keys_and_disconnect(tab: Tab, srv: RunningServer, peers):
    await login(tab, srv)
    page = tab.page
    await tab.view("clients")

    # a refused change shows the server's message
    await page.fill("#trust-client-id", "not-an-extension")
    await page.select_option("#trust-client-type", "SillyTavern")
    await page.click('#trust-form button[type="submit"]')
    await expect(page.locator("#view-clients .form-error")).to_have_text(
        "SillyTavern clientIds must start with 'SillyTavern'."
    )

    await page.fill("#trust-client-id", "tool-1")
    await page.select_option("#trust-client-type", "client")
    await page.click('#trust-form button[type="submit"]')
    row = tab.row("#trust-table", "client-id", "tool-1")
    await expect(row).to_contain_text("trusted")
    await expect(row).to_contain_text("no key")

    await row.get_by_role("button", name="Generate key").click()
    dialog = page.locator("#key-dialog")
    await expect(dialog).to_be_visible()
    await expect(dialog).to_contain_text("Shown once")
    key = await page.input_value("#key-value")
    assert len(key) >= 32
    await page.click("#key-copy")
    await expect(page.locator("#key-copy")).to_have_text("Copied")
    assert await page.evaluate("navigator.clipboard.readText()") == key
    await tab.shot("key-dialog", full_page=False)
    await page.click("#key-done")
    await expect(dialog).to_be_hidden()
    await expect(page.locator("#key-value")).to_have_value("")
    assert key not in await page.evaluate("document.documentElement.outerHTML")
    await expect(row.locator(".fingerprint")).to_be_visible()

    # the key works, and revoking it closes the client's connection
    tool = peers()
    await tool.open("/", auth("tool-1", key, clientType="web-app"))
    await expect(tab.row("#clients-connected", "identity", "tool-1")).to_have_count(1)
    await tab.shot("clients")
    await row.get_by_role("button", name="Revoke key").click()
    await tab.confirm()
    await expect(row).to_contain_text("no key")
    await eventually(lambda: not tool.connected("/"))
    assert all(r.client_id != "tool-1" for r in await srv.app.keys.list())  # type: ignore[union-attr]

    await row.get_by_role("button", name="Remove trust").click()
    await tab.confirm()
    await expect(row).to_have_count(0)  # the entry is gone from the trust list
    assert await srv.app.trust.get("tool-1") is None  # type: ignore[union-attr]

    # disconnect a connected client
    victim = await connect(srv, peers, "web-victim", desc="to be disconnected")
    victim_row = tab.row("#clients-connected", "identity", "web-victim")
    await victim_row.get_by_role("button", name="Disconnect").click()
    await tab.confirm()
    await expect(victim_row).to_have_count(0)
    await eventually(lambda: not victim.connected("/llm"))


# ---------------------------------------------------------------------- rooms
async def test_rooms_members_roles_mutes_and_mode(tab: Tab, srv: RunningServer, peers):
    await connect(srv, peers, "web-rooms", desc="room member")
    await login(tab, srv)
    page = tab.page
    await tab.view("rooms")
    rooms = srv.app.rooms  # type: ignore[union-attr]

    await page.fill("#room-name", "team-a")
    await page.click('#room-create button[type="submit"]')
    await expect(page.locator("#room-detail-name")).to_have_text("team-a")
    await expect(tab.row("#room-list", "room", "team-a")).to_have_count(1)
    assert rooms.rooms["team-a"].role("admin") is Role.MASTER

    await page.fill("#room-name", "team-a")
    await page.click('#room-create button[type="submit"]')
    await expect(page.locator("#view-rooms .form-error").first).to_have_text("Room already exists")

    await page.fill("#member-identity", "web-rooms")
    await page.select_option("#member-role", "guest")
    await page.click('#member-add button[type="submit"]')
    member = tab.row("#member-table", "identity", "web-rooms")
    await expect(member).to_contain_text("online")
    await expect(member.locator("select")).to_have_value("guest")
    assert rooms.rooms["team-a"].role("web-rooms") is Role.GUEST

    await member.locator("select").select_option("manager")
    await eventually(lambda: rooms.rooms["team-a"].role("web-rooms") is Role.MANAGER)
    await expect(member.locator("select")).to_have_value("manager")

    await page.fill("#mute-amount", "2")
    await page.select_option("#mute-unit", "60")
    await member.get_by_role("button", name="Mute").click()
    await expect(member).to_contain_text("muted until")
    record = srv.app.mutes.muted("web-rooms", "team-a")  # type: ignore[union-attr]
    assert record is not None and record.duration == 120

    await page.select_option("#room-mode", "HostSubmit")
    await page.click("text=Apply mode")
    await eventually(lambda: rooms.rooms["team-a"].mode is RequestMode.HOST_SUBMIT)
    await expect(page.locator("#room-detail")).to_contain_text("HostSubmit")
    listed = tab.row("#room-list", "room", "team-a")
    await expect(listed).to_contain_text("HostSubmit")
    await expect(listed.locator("td.num")).to_have_text("2")
    await tab.shot("rooms")

    await member.get_by_role("button", name="Unmute").click()
    await expect(member).not_to_contain_text("muted")
    assert srv.app.mutes.muted("web-rooms", "team-a") is None  # type: ignore[union-attr]

    # the dashboard lists the client's rooms
    await tab.view("dashboard")
    await expect(tab.row("#dash-clients", "identity", "web-rooms")).to_contain_text("team-a")
    await tab.view("rooms")

    await member.get_by_role("button", name="Kick").click()
    await tab.confirm()
    await expect(member).to_have_count(0)
    assert rooms.rooms["team-a"].role("web-rooms") is None

    await page.click("#room-delete")
    await tab.confirm()
    await expect(tab.row("#room-list", "room", "team-a")).to_have_count(0)
    await expect(page.locator("#room-detail")).to_contain_text("No room selected")
    assert "team-a" not in rooms.rooms


async def test_member_list_shows_mutes_made_elsewhere(tab: Tab, srv: RunningServer, peers):
    """Mutes come from GET_CLIENTS_IN_ROOM, so one made before the page
    loaded or by another admin shows (with its time), and a permanent one
    shows without a time."""
    await connect(srv, peers, "web-muted", desc="muted member")
    other = await connect(srv, peers, "admin-other", ClientKind.MONITOR, namespaces=("/rooms",))
    ack = await other.call("/rooms", "CREATE_ROOM", {"roomName": "team-m"})
    assert ack["status"] == "ok", ack
    ack = await other.call(
        "/rooms", "ADD_CLIENT_TO_ROOM", {"identity": "web-muted", "roomName": "team-m"}
    )
    assert ack["status"] == "ok", ack
    target = {"targetIdentity": "web-muted", "roomName": "team-m"}
    ack = await other.call("/rooms", "MUTE_MEMBER", target)  # permanent, before the page loads
    assert ack["status"] == "ok" and ack["mutedUntil"].startswith("9999-"), ack

    await login(tab, srv)
    page = tab.page
    await tab.view("rooms")
    await tab.row("#room-list", "room", "team-m").click()
    member = tab.row("#member-table", "identity", "web-muted")
    muted = member.locator(".badge.danger")
    await expect(muted).to_have_text("muted")  # permanent: no "until 23:59:59"
    await expect(member.get_by_role("button", name="Unmute")).to_be_visible()

    # another admin's changes arrive over the wire (a system message of the room)
    quick = 3000  # well before the 15 s full refresh
    await other.call("/rooms", "UNMUTE_MEMBER", target)
    await expect(muted).to_have_count(0, timeout=quick)
    await expect(member.get_by_role("button", name="Mute")).to_be_visible()
    await other.call("/rooms", "MUTE_MEMBER", {**target, "duration": 600})
    await expect(muted).to_have_text(re.compile(r"^muted until \d\d:\d\d:\d\d$"), timeout=quick)
    until = srv.app.mutes.muted("web-muted", "team-m").muted_until  # type: ignore[union-attr]
    shown = await page.evaluate("(iso) => new Date(iso).toTimeString().slice(0, 8)", until)
    await expect(muted).to_have_text(f"muted until {shown}")

    # the page's own permanent mute: the list is read again, no time shown
    await member.get_by_role("button", name="Unmute").click()
    await expect(muted).to_have_count(0)
    await page.select_option("#mute-unit", "0")
    await member.get_by_role("button", name="Mute").click()
    await expect(muted).to_have_text("muted")
    record = srv.app.mutes.muted("web-muted", "team-m")  # type: ignore[union-attr]
    assert record is not None and record.duration is None


async def test_room_created_elsewhere_appears_at_once(tab: Tab, srv: RunningServer, peers):
    """ROOM_CREATED (to monitor-room) puts the room in the list before the
    next status poll could notice the count change."""
    sent: list[str] = []
    tab.page.on(
        "websocket",
        lambda ws: ws.on(
            "framesent", lambda data: sent.append(data if isinstance(data, str) else "")
        ),
    )
    polls = lambda: sum("SERVER_STATUS" in f for f in sent)  # noqa: E731
    ext = await connect(
        srv, peers, "SillyTavern-maker", ClientKind.SILLYTAVERN, namespaces=("/rooms",)
    )
    await login(tab, srv)
    await tab.view("rooms")
    before = polls()
    await eventually(lambda: polls() > before)  # just polled: the next poll is 3 s away
    await asyncio.sleep(0.2)
    polled = polls()
    ack = await ext.call("/rooms", "CREATE_ROOM", {"roomName": "made-elsewhere"})
    assert ack["status"] == "ok", ack
    await expect(tab.row("#room-list", "room", "made-elsewhere")).to_have_count(1, timeout=2000)
    assert polls() == polled, "the room appeared only after a status poll"


# ---------------------------------------------------------------------- policy
async def test_policy_switch_and_manual_assignment(tab: Tab, srv: RunningServer, peers):
    await fake_extension(srv, peers, "SillyTavern-pol")
    await connect(srv, peers, "web-pol")
    await login(tab, srv)
    page = tab.page
    relations = srv.app.relations  # type: ignore[union-attr]
    await tab.view("policy")
    await expect(page.locator("#policy-current")).to_have_text("Free")
    live = tab.row("#assignments-table", "room", "web-pol")
    await expect(live).to_contain_text("SillyTavern-pol")
    try:
        await page.select_option("#policy-select", "Manual")
        await page.click("#policy-apply")
        # nothing is assigned yet: the switch asks first, and Cancel changes nothing
        dialog = page.locator("#confirm-dialog")
        await expect(dialog).to_contain_text("Switch to Manual")
        await dialog.get_by_role("button", name="Cancel").click()
        await expect(dialog).to_be_hidden()
        await expect(page.locator("#policy-current")).to_have_text("Free")
        await page.click("#policy-apply")
        await tab.confirm()
        await expect(page.locator("#policy-current")).to_have_text("Manual")
        await expect(live).to_contain_text("none")

        editor = tab.row("#manual-table", "room", "web-pol")
        await editor.get_by_label("SillyTavern-pol for web-pol").check()
        await editor.get_by_role("button", name="Save").click()
        await expect(live).to_contain_text("SillyTavern-pol")
        assert relations.for_room("web-pol") == ["SillyTavern-pol"]
        await tab.shot("policy")
    finally:
        admin = await connect(srv, peers, "admin", ClientKind.MONITOR, namespaces=("/rooms",))
        await admin.call("/rooms", "SET_CONNECTION_POLICY", {"policy": "Free"})
    await expect(page.locator("#policy-current")).to_have_text("Free")


# ---------------------------------------------------------------------- live traffic
async def test_request_streams_token_by_token_and_ping(tab: Tab, srv: RunningServer, peers):
    ext = await fake_extension(srv, peers, "SillyTavern-live")
    await login(tab, srv)
    page = tab.page
    await tab.view("traffic")
    await expect(page.locator("#traffic-room")).to_have_value("admin")
    await page.select_option("#traffic-extension", "SillyTavern-live")
    await page.fill("#traffic-input", "Hi there")
    await page.click("#traffic-send")
    await expect(page.locator("#traffic-send-result")).to_contain_text(
        "forwarded to SillyTavern-live"
    )
    request = await ext.next_request()
    assert request["message"] == "Hi there" and request["targetRoom"] == "admin"
    asked = page.locator('#traffic-messages article[data-kind="request"]').last
    await expect(asked).to_contain_text("Hi there")

    output = str(uuid.uuid4())
    bubble = page.locator("#traffic-messages article.streaming .msg-body")
    await ext.token(output, "Hel", first=True)
    await expect(bubble).to_have_text("Hel")
    await ext.token(output, "lo, ", first=False)
    await expect(bubble).to_have_text("Hello, ")
    await tab.shot("traffic-streaming")
    await ext.token(output, "world!", first=False, final=True)
    answer = page.locator('#traffic-messages article[data-kind="response"]').last
    await expect(answer.locator(".msg-body")).to_have_text("Hello, world!")
    await expect(page.locator("#traffic-messages article.streaming")).to_have_count(0)
    await expect(asked).to_contain_text("completed")

    await page.click("#traffic-ping")
    await expect(page.locator("#traffic-ping-result")).to_contain_text("Yes,connection is fine.")
    await tab.shot("traffic")


async def test_history_is_paged_and_other_rooms_are_live(tab: Tab, srv: RunningServer, peers):
    await connect(srv, peers, "web-hist")
    for i in range(60):
        await srv.app.history.system("web-hist", f"entry {i:02d}")  # type: ignore[union-attr]
    await login(tab, srv)
    page = tab.page
    await tab.view("traffic")
    await page.select_option("#traffic-room", "web-hist")
    count = page.locator("#traffic-count")
    await expect(count).to_have_text(re.compile(r"^50 of (6\d) message\(s\)$"))
    total = int(re.search(r"of (\d+)", await count.inner_text()).group(1))  # type: ignore[union-attr]
    log = page.locator("#traffic-messages")
    await expect(log).to_contain_text("entry 59")
    await expect(log).not_to_contain_text("entry 05")
    await page.click("#traffic-older")
    await expect(log).to_contain_text("entry 05")
    await expect(count).to_have_text(f"{total} of {total} message(s)")
    await expect(page.locator("#traffic-older")).to_be_hidden()

    # new messages of the room arrive live
    await srv.app.history.system("web-hist", "a live line")  # type: ignore[union-attr]
    await expect(log).to_contain_text("a live line")
    await expect(count).to_have_text(f"{total + 1} of {total + 1} message(s)")

    # "all rooms" shows every room's new messages
    await page.select_option("#traffic-room", "*")
    await srv.app.history.system("web-hist", "seen from all rooms")  # type: ignore[union-attr]
    await expect(log).to_contain_text("seen from all rooms")
    await expect(log).to_contain_text("#web-hist")


async def test_a_failed_request_shows_one_error_toast(tab: Tab, srv: RunningServer, peers):
    ext = await fake_extension(srv, peers, "SillyTavern-fails")
    await login(tab, srv)
    page = tab.page
    _, asked = await ask_in_traffic(tab, ext, "SillyTavern-fails", "please fail")
    await ext.error("the model is down")  # the request in flight
    await expect(asked.locator(".req-status")).to_have_text("failed")
    toasts = page.locator("#toasts .toast.error")
    await expect(toasts).to_have_count(1)
    await expect(toasts).to_contain_text("the model is down")
    await asyncio.sleep(0.5)  # nothing else comes after
    await expect(toasts).to_have_count(1)


# ---------------------------------------------------------------------- logs and debug
async def test_logs_paging_filter_and_debug_toggle(tab: Tab, srv: RunningServer):
    levels = ["info", "warn", "error", "debug"]
    lines = [
        f"2026-11-25 10:{i // 60:02d}:{i % 60:02d} - {levels[i % 4]} - event {i:02d} <b>bold</b>"
        for i in range(40)
    ]
    log_dir = srv.data_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    (log_dir / "combined.log").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (log_dir / "warn.log").unlink(missing_ok=True)
    before = logs.current_level()
    await login(tab, srv)
    page = tab.page
    await tab.view("logs")
    entries = page.locator("#log-entries pre")
    await expect(entries).to_have_count(25)
    await expect(entries.first).to_contain_text("event 39 <b>bold</b>")  # newest first, as text
    await expect(page.locator("#log-where")).to_have_text("page 1 of 2 · 40 entries")
    await page.click("#log-older")
    await expect(entries).to_have_count(15)
    await expect(entries.first).to_contain_text("event 14")
    await expect(page.locator("#log-where")).to_have_text("page 2 of 2 · 40 entries")

    await page.select_option("#log-level", "error")
    await expect(page.locator("#log-where")).to_have_text("page 1 of 1 · 10 entries")
    await expect(entries).to_have_count(10)
    for text in await entries.all_inner_texts():
        assert " - error - " in text
    await tab.shot("logs")

    await page.select_option("#log-file", "warn.log")
    await expect(page.locator("#log-error")).to_have_text("Log file not found: warn.log")
    await page.select_option("#log-file", "combined.log")
    await expect(page.locator("#log-error")).to_be_hidden()

    try:
        await page.click("#debug-toggle")
        await expect(page.locator("#debug-state")).to_have_text("on")
        await expect(page.locator("#debug-badge")).to_be_visible()
        assert srv.app.live.current.debug_mode is True  # type: ignore[union-attr]
        await tab.shot("debug-on")
        await page.click("#debug-toggle")
        await expect(page.locator("#debug-state")).to_have_text("off")
        await expect(page.locator("#debug-badge")).to_be_hidden()
        assert srv.app.live.current.debug_mode is False  # type: ignore[union-attr]
    finally:
        logs.set_level(before)


# ---------------------------------------------------------------------- XSS
async def test_client_strings_are_text_never_html(tab: Tab, srv: RunningServer, peers):
    evil_identity = "<svg onload=alert(2)>"
    evil_room = "<b>bold</b><img src=x onerror=alert(3)>"
    evil_message = "<img src=x onerror=alert(4)><script>alert(5)</script>"
    ext = await fake_extension(srv, peers, "SillyTavern-xss", desc=XSS_DESC)
    await connect(srv, peers, "xss-client", identity=evil_identity, desc=XSS_DESC)
    await login(tab, srv)
    page = tab.page

    await expect(tab.row("#dash-clients", "identity", evil_identity)).to_contain_text(XSS_DESC)
    await expect(tab.row("#dash-extensions", "identity", "SillyTavern-xss")).to_contain_text(
        XSS_DESC
    )
    await tab.shot("xss-dashboard")

    await tab.view("rooms")
    await page.fill("#room-name", evil_room)
    await page.click('#room-create button[type="submit"]')
    await expect(page.locator("#room-detail-name")).to_have_text(evil_room)
    await page.fill("#member-identity", evil_identity)
    await page.click('#member-add button[type="submit"]')
    await expect(tab.row("#member-table", "identity", evil_identity)).to_contain_text(XSS_DESC)

    await tab.view("traffic")
    await page.select_option("#traffic-room", evil_room)
    await page.fill("#traffic-input", evil_message)
    await page.click("#traffic-send")
    await ext.next_request()
    await ext.message(evil_message)
    log = page.locator("#traffic-messages")
    await expect(log.locator('article[data-kind="response"] .msg-body')).to_have_text(evil_message)
    await expect(log.locator('article[data-kind="request"] .msg-body')).to_have_text(evil_message)
    await expect(log).to_contain_text(f"{evil_identity} has joined the room")
    await tab.shot("xss-traffic")

    # nothing from the data became markup, and nothing ran
    made = await page.evaluate("document.querySelectorAll('img, svg, b, script:not([src])').length")
    assert made == 0
    await asyncio.sleep(0.3)
    assert tab.dialogs == []


# ---------------------------------------------------------------------- narrow window
async def test_narrow_window(narrow_tab: Tab, srv: RunningServer, peers):
    tab = narrow_tab
    await fake_extension(
        srv, peers, "SillyTavern-narrow", desc="an extension with a long description"
    )
    await connect(srv, peers, "web-narrow", desc="a client on a phone")
    await login(tab, srv)
    page = tab.page
    nav = page.locator("#nav")
    await expect(nav).to_be_hidden()
    await expect(page.locator("#nav-toggle")).to_be_visible()
    await expect(tab.row("#dash-clients", "identity", "web-narrow")).to_have_count(1)

    async def no_page_overflow() -> None:
        width = await page.evaluate("document.documentElement.scrollWidth")
        culprits = await page.evaluate(
            "[...document.querySelectorAll('body *')]"
            ".filter(e => e.getBoundingClientRect().right > window.innerWidth + 0.5)"
            ".slice(0, 5).map(e => e.tagName + '#' + e.id + '.' + e.className)"
        )
        assert width <= NARROW["width"], (width, culprits)

    await no_page_overflow()
    await tab.shot("narrow-dashboard")
    await page.click("#nav-toggle")
    await expect(nav).to_be_visible()
    await tab.shot("narrow-menu", full_page=False)
    await page.click('#nav a[data-view="clients"]')
    await expect(nav).to_be_hidden()
    await expect(page.locator("#view-clients")).to_be_visible()
    await expect(tab.row("#trust-table", "client-id", "web-narrow")).to_have_count(1)
    await no_page_overflow()
    # wide tables scroll inside their box instead of widening the page
    scrolls = await page.evaluate(
        "[...document.querySelectorAll('#view-clients .table-wrap')]"
        ".some(w => w.scrollWidth > w.clientWidth)"
    )
    assert scrolls
    await tab.shot("narrow-clients")
    for name in ("rooms", "policy", "traffic", "logs"):
        await tab.view(name)
        await no_page_overflow()
        await tab.shot(f"narrow-{name}")


# ---------------------------------------------------------------------- example client
async def test_example_client_hears_extensions_sent_at_connect(tab: Tab, srv: RunningServer, peers):
    await fake_extension(srv, peers, "SillyTavern-example")
    key = await srv.client("web-example")
    page = tab.page
    await page.goto(srv.url + "/exampleClient/")
    await page.fill('#login input[name="clientId"]', "web-example")
    await page.fill('#login input[name="key"]', key)
    await page.click("#login button")
    await expect(page.locator("#status")).to_have_text("Connected.")
    # AVAILABLE_EXTENSIONS is sent once, when /rooms connects
    await expect(page.locator("body")).to_contain_text("Extensions: SillyTavern-example")
    assert key not in page.url

    # a refused namespace rejects connect() and closes what it opened
    sockets = srv.app.presence.identity_sids  # type: ignore[union-attr]
    await page.evaluate("() => location.reload()")
    await page.wait_for_load_state()
    await eventually(lambda: not sockets("web-example"))
    message = await page.evaluate(
        """async (key) => {
          const { connect } = await import('/dist/newage-client.js');
          try {
            await connect({ clientId: 'web-example', key }, { namespaces: ['/', '/llm', '/debug'] });
            return 'connected';
          } catch (err) { return err.message; }
        }""",
        key,
    )
    assert message.startswith("/debug"), message
    await eventually(lambda: not sockets("web-example"))
