"""Our SillyTavern extension (extension/) in Debian's Chromium, inside a
stand-in SillyTavern page that behaves like SillyTavern 1.12 behind
getContext(), against a real server and a real python-socketio requester."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from newage.protocol.names import ClientKind
from tests.helpers.actors import admin, connect, room
from tests.helpers.browser import ARGS, CHROMIUM
from tests.helpers.client import Peer
from tests.helpers.server import RunningServer
from tests.helpers.sillytavern import StandIn
from tests.helpers.wait import eventually

pytestmark = pytest.mark.browser

EMOJI_TOKENS = ["Hel", "lo", " wor", "ld ", "😀", " ok", "!"]
# the explicit end must complete an answer long before idle time would
SETTINGS = {"streamFinalizeIdleMs": 60000, "streamCoalesceMs": 0}
# the server sends several requests at once: the extension's own queue works
LOCAL_QUEUE = {**SETTINGS, "extensionConcurrency": 4}
WAITING = ("processing", "queued", "forwarded", "stalled")


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield chromium
        await chromium.close()


@pytest.fixture
def standin() -> Any:
    with StandIn() as st:
        yield st


async def open_page(browser: Browser, st: StandIn, server: RunningServer, **settings: Any) -> Page:
    preset = {"serverUrl": server.url, **settings}
    page = await browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.errors = errors  # type: ignore[attr-defined]
    await page.goto(st.url + "?settings=" + json.dumps(preset))
    await page.wait_for_function("window.standin && window.standin.ready")
    return page


async def connected(page: Page, timeout: float = 10_000) -> None:
    status = page.locator("#newage_status")
    await expect(status).to_have_attribute("data-state", "connected", timeout=timeout)


async def serving(server, peers, browser, standin, **settings: Any) -> tuple[Page, Peer]:
    """The extension connected in its page, and a requester."""
    await server.trust(standin.client_id, ClientKind.SILLYTAVERN)
    page = await open_page(browser, standin, server, **settings)
    await connected(page)
    return page, await connect(server, peers, "web")


async def ask(web: Peer, request_id: str, text: str, **extra: Any) -> None:
    payload = {"requestId": request_id, "message": text, **extra}
    ack = await web.call("/llm", "LLM_REQUEST", payload)
    assert ack["status"] == "ok" and ack["targets"], ack


def streamed(web: Peer, request_id: str) -> str:
    return "".join(
        p["data"]
        for p in web.received("/llm", "SERVER_STREAM_DATA")
        if p["requestId"] == request_id
    )


async def final_status(web: Peer, request_id: str, timeout: float = 10) -> dict[str, Any]:
    return await web.next(  # type: ignore[no-any-return]
        "/llm",
        "REQUEST_STATUS_UPDATE",
        lambda p: p["requestId"] == request_id and p["status"] not in WAITING,
        timeout=timeout,
    )


@pytest.mark.parametrize("server_settings", [SETTINGS])
async def test_login_stream_and_non_stream_answers(server, peers, browser, standin):
    await server.trust(standin.client_id, ClientKind.SILLYTAVERN)
    page = await open_page(browser, standin, server)
    # the defaults a fresh SillyTavern gets, then the saved server URL
    assert await page.input_value("#newage_clientId") == standin.client_id
    assert await page.is_checked("#newage_autoConnect")
    await connected(page)
    await expect(page.locator("#newage_status")).to_contain_text("key: yes")

    web = await connect(server, peers, "web")
    await page.evaluate("(t) => { window.standin.script['Hi there'] = t }", EMOJI_TOKENS)
    await ask(web, "r1", "Hi there")
    end = await web.next("/llm", "SERVER_STREAM_END", timeout=10)
    ended = time.monotonic()
    done = await final_status(web, "r1")
    assert time.monotonic() - ended < 1.0  # completed at once, not after idle time
    assert done["status"] == "completed"
    assert streamed(web, "r1") == "".join(EMOJI_TOKENS) == end["data"]
    assert end["status"] == "completed" and end["requestId"] == "r1"

    # the answer was written in the room's own chat, after the request as user turn
    assert await page.evaluate("window.standin.chatId()") == "newage - web"
    texts = await page.evaluate("window.standin.chatTexts()")
    assert texts[-2:] == ["user: Hi there", "char: " + "".join(EMOJI_TOKENS)]
    # the user turn carries a time SillyTavern can read (it shows it on the message)
    age = await page.evaluate(
        """() => {
            const turn = window.standin.files['newage - web'].find((m) => m.mes === 'Hi there');
            const date = window.standin.parseTimestamp(turn.send_date);
            return date && !Number.isNaN(date.getTime()) ? (Date.now() - date) / 1000 : null;
        }"""
    )
    assert age is not None and -120 < age < 120, age

    await page.evaluate("window.standin.backend.streaming = false")
    await ask(web, "r2", "plain please")
    answer = await web.next("/llm", "message", lambda p: p.get("requestId") == "r2", timeout=10)
    assert answer["data"] == "Echo: plain please" and answer["type"] == 0
    assert (await final_status(web, "r2"))["status"] == "completed"
    assert not [p for p in web.received("/llm", "SERVER_STREAM_DATA") if p["requestId"] == "r2"]

    context = await web.call("/llm", "GET_FULL_CONTEXT", {"roomName": "web"})
    assert context["status"] == "ok"
    pages = await web.next("/llm", "UPDATE_CONTEXT_PAGE", lambda p: p["isLastPage"])
    answers = [m["data"] for m in pages["contextPage"] if m.get("isResponse")]
    assert answers == ["".join(EMOJI_TOKENS), "Echo: plain please"]
    await expect(page.locator("#newage_status")).to_contain_text("requests served: 2")
    assert page.errors == []  # type: ignore[attr-defined]


@pytest.mark.parametrize("server_settings", [LOCAL_QUEUE])
async def test_two_queued_requests_one_generation_at_a_time(server, peers, browser, standin):
    page, web = await serving(server, peers, browser, standin)
    boss = await admin(server, peers)
    await room(boss, "hall", {"web": "guest"})
    await page.evaluate("window.standin.backend.delayMs = 40")
    await ask(web, "q1", "first question")
    await ask(web, "q2", "second question", targetRoom="hall")
    for rid, text in (("q1", "first question"), ("q2", "second question")):
        assert (await final_status(web, rid))["status"] == "completed"
        assert streamed(web, rid) == f"Echo: {text}"
    assert await page.evaluate("window.standin.overlaps") == 0
    assert await page.evaluate("window.standin.generations") == [
        "first question",
        "second question",
    ]
    # each room has its own conversation with the character
    files = await page.evaluate("window.standin.files")
    for room_name, text in (("web", "first question"), ("hall", "second question")):
        chat = [m["mes"] for m in files[f"newage - {room_name}"]]
        assert chat == ["Hello, I am Aria.", text, f"Echo: {text}"]


@pytest.mark.parametrize("server_settings", [SETTINGS])
async def test_a_failed_generation_reaches_the_requester(server, peers, browser, standin):
    page, web = await serving(server, peers, browser, standin)
    await page.evaluate("window.standin.backend.fail = true")
    await ask(web, "f1", "will fail")
    error = await web.next("/llm", "ERROR", lambda p: p.get("requestId") == "f1", timeout=10)
    assert "API Error" in error["message"]
    done = await final_status(web, "f1")
    assert done["status"] == "failed" and "API Error" in done["message"]
    await page.evaluate("window.standin.backend.fail = false")
    await ask(web, "f2", "fine again")
    assert (await final_status(web, "f2"))["status"] == "completed"


@pytest.mark.parametrize("server_settings", [LOCAL_QUEUE])
async def test_stop_by_the_user_and_cancel_by_the_server(server, peers, browser, standin):
    page, web = await serving(server, peers, browser, standin)
    await page.evaluate("window.standin.backend.delayMs = 150")
    long_text = "a long question that streams for a while"

    # the user presses Stop in SillyTavern
    await ask(web, "s1", long_text)
    first = await web.next(
        "/llm", "SERVER_STREAM_DATA", lambda p: p["requestId"] == "s1", timeout=10
    )
    await page.click("#mes_stop")
    end = await web.next("/llm", "SERVER_STREAM_END", lambda p: p["requestId"] == "s1")
    assert end["status"] == "stopped" and end["data"] == first["data"] + streamed(web, "s1")
    assert end["data"].startswith("Echo") and len(end["data"]) < len("Echo: " + long_text)
    assert (await final_status(web, "s1"))["status"] == "stopped"

    # the requester cancels a running request and a queued one
    await ask(web, "c1", long_text)
    await ask(web, "c2", "never generated")
    await web.next("/llm", "SERVER_STREAM_DATA", lambda p: p["requestId"] == "c1", timeout=10)
    for rid in ("c2", "c1"):
        ack = await web.call("/llm", "CANCEL_REQUEST", {"requestId": rid})
        assert ack["status"] == "ok", ack
        assert (await final_status(web, rid))["status"] == "cancelled"
    await page.wait_for_function("window.standin.stops === 2")

    # the extension is free again, and nothing was generated for c2
    await page.evaluate("window.standin.backend.delayMs = 10")
    await ask(web, "c3", "after")
    assert (await final_status(web, "c3"))["status"] == "completed"
    assert streamed(web, "c3") == "Echo: after"
    generations = await page.evaluate("window.standin.generations")
    assert "never generated" not in generations
    await expect(page.locator("#newage_status")).to_contain_text("queue: 0")


@pytest.mark.parametrize("server_settings", [SETTINGS])
async def test_a_server_down_at_load_is_waited_for(server, peers, browser, standin):
    await server.trust(standin.client_id, ClientKind.SILLYTAVERN)
    await server.stop()
    page = await open_page(browser, standin, server)
    await expect(page.locator("#newage_error")).to_contain_text("Last error", timeout=10_000)
    await expect(page.locator("#newage_status")).not_to_have_attribute("data-state", "connected")
    await server.start()
    await connected(page, timeout=20_000)


@pytest.mark.parametrize("server_settings", [SETTINGS])
async def test_reconnects_after_a_server_restart(server, peers, browser, standin):
    await server.trust(standin.client_id, ClientKind.SILLYTAVERN)
    page = await open_page(browser, standin, server)
    await connected(page)
    await server.restart()  # same port, same data directory (the key survives)
    await connected(page, timeout=20_000)
    web = await connect(server, peers, "web")
    await ask(web, "after-restart", "still there?")
    assert (await final_status(web, "after-restart"))["status"] == "completed"
    assert streamed(web, "after-restart") == "Echo: still there?"


async def test_a_refused_key_means_a_fresh_login(server, peers, browser, standin):
    await server.trust(standin.client_id, ClientKind.SILLYTAVERN)
    page = await open_page(browser, standin, server, key="a-key-from-another-server")
    await connected(page)
    assert await page.evaluate("window.newage.settings.key") != "a-key-from-another-server"


async def test_wrong_password_is_shown_in_the_panel(server, peers, browser, standin):
    await server.trust(standin.client_id, ClientKind.SILLYTAVERN, password="right horse")
    page = await open_page(browser, standin, server, password="wrong horse")
    error = page.locator("#newage_error")
    await expect(error).to_contain_text("Invalid password.", timeout=10_000)
    await expect(page.locator("#newage_status")).not_to_have_attribute("data-state", "connected")
    await page.fill("#newage_password", "right horse")
    await page.dispatch_event("#newage_password", "change")
    await page.click("#newage_connect")
    await connected(page)
    await expect(error).to_have_text("")


@pytest.mark.parametrize("server_settings", [SETTINGS])
async def test_a_request_waits_while_sillytavern_answers_its_user(server, peers, browser, standin):
    # answering in the chat that is open: the one the user is talking in
    page, web = await serving(server, peers, browser, standin, conversation="current")
    await page.evaluate("window.standin.backend.delayMs = 40")
    # the SillyTavern user's own message is being answered when the request arrives
    await page.evaluate("window.standin.userSend('typed by the user')")
    await page.wait_for_function(
        "window.standin.chatTexts().at(-1).startsWith('char: Echo')", timeout=10_000
    )
    await ask(web, "b1", "from newage")
    assert (await final_status(web, "b1"))["status"] == "completed"
    # only its own tokens, none of the user's reply
    assert streamed(web, "b1") == "Echo: from newage"
    assert await page.evaluate("window.standin.overlaps") == 0
    assert await page.evaluate("window.standin.generations") == ["typed by the user", "from newage"]
    # it was given the user's finished reply, not half of it
    prompts = await page.evaluate("window.standin.prompts")
    assert prompts[1][-2:] == ["Echo: typed by the user", "from newage"]
    assert (await page.evaluate("window.standin.chatTexts()"))[-4:] == [
        "user: typed by the user",
        "char: Echo: typed by the user",
        "user: from newage",
        "char: Echo: from newage",
    ]

    # while it answers, the user's Send is ignored by SillyTavern (its draft stays)
    await page.evaluate("window.standin.backend.delayMs = 100")
    await ask(web, "b2", "second from newage")
    first = await web.next(
        "/llm", "SERVER_STREAM_DATA", lambda p: p["requestId"] == "b2", timeout=10
    )
    await page.evaluate("window.standin.userSend('too early')")
    assert (await final_status(web, "b2"))["status"] == "completed"
    assert first["data"] + streamed(web, "b2") == "Echo: second from newage"
    assert await page.input_value("#send_textarea") == "too early"
    assert "too early" not in await page.evaluate("window.standin.generations")


@pytest.mark.parametrize("server_settings", [SETTINGS])
async def test_processing_is_reported_when_a_non_stream_generation_starts(
    server, peers, browser, standin
):
    page, web = await serving(server, peers, browser, standin)
    # a non-stream answer of 15 tokens x 150 ms: about 2 s of silence
    await page.evaluate("window.standin.backend.streaming = false")
    await page.evaluate("window.standin.backend.delayMs = 150")
    await ask(web, "p1", "a question answered in one piece")
    await web.next(
        "/llm",
        "REQUEST_STATUS_UPDATE",
        lambda p: p["requestId"] == "p1" and p["status"] == "processing",
        timeout=10,
    )
    seen = time.monotonic()
    answer = await web.next("/llm", "message", lambda p: p.get("requestId") == "p1", timeout=10)
    assert time.monotonic() - seen > 0.8  # it came when the generation began, not with the answer
    assert answer["data"] == "Echo: a question answered in one piece"
    assert (await final_status(web, "p1"))["status"] == "completed"


@pytest.mark.parametrize("server_settings", [LOCAL_QUEUE])
async def test_a_disconnect_drops_the_local_jobs(server, peers, browser, standin):
    page, web = await serving(server, peers, browser, standin)
    await page.evaluate("window.standin.backend.delayMs = 150")
    await ask(web, "d1", "a long question that streams for a while")
    await ask(web, "d2", "queued before the restart")
    await web.next("/llm", "SERVER_STREAM_DATA", lambda p: p["requestId"] == "d1", timeout=10)
    await server.restart()  # the server failed both; the extension must forget them
    await page.wait_for_function("window.standin.stops === 1", timeout=10_000)
    await expect(page.locator("#newage_error")).to_contain_text("2 requests dropped")
    await connected(page, timeout=20_000)
    await expect(page.locator("#newage_status")).to_contain_text("queue: 0")

    web2 = await connect(server, peers, "web")
    await page.evaluate("window.standin.backend.delayMs = 10")
    await ask(web2, "d3", "after the restart")
    assert (await final_status(web2, "d3"))["status"] == "completed"
    assert streamed(web2, "d3") == "Echo: after the restart"
    generations = await page.evaluate("window.standin.generations")
    assert "queued before the restart" not in generations
    assert generations[-1] == "after the restart"


@pytest.mark.parametrize("server_settings", [{**SETTINGS, "heartbeatInterval": 200}])
async def test_the_extension_answers_the_heartbeat(server, peers, browser, standin):
    await serving(server, peers, browser, standin)
    boss = await admin(server, peers)

    async def beaten() -> bool:
        ack = await boss.call("/llm", "GET_EXTENSIONS_STATE", {})
        mine = [e for e in ack["extensions"] if e["identity"] == standin.client_id]
        return bool(mine and mine[0]["lastHeartbeatAt"] and mine[0]["available"])

    await eventually(beaten, timeout=10)
