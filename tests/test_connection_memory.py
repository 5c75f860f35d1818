"""What each connection keeps (docs/performance.md, "Idle memory and connect
cost"): python-socketio's rooms other than the roster are plain
dictionaries, the sockets of one identity share its principal, and the
shared strings are shared. Real server, real clients."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time

from bidict import bidict
from socketio.base_manager import BaseManager

from newage.domain.ports.delivery import room_addr
from newage.logs import (
    BATCH_SECONDS,
    LineFormatter,
    LogFile,
    log,
    setup_logging,
    shutdown_logging,
)
from newage.realtime.manager import LeanRoom
from tests.helpers.actors import admin, connect
from tests.helpers.wait import eventually


def test_the_manager_reads_rooms_the_way_lean_rooms_expect():
    # LeanRoom stands in for bidict where python-socketio reads only the
    # forward mapping; an upgrade reading rooms otherwise must be looked at
    participants = inspect.getsource(BaseManager.get_participants)
    assert "._fwdm" in participants and "._invm" not in participants
    assert "[None]._invm" in inspect.getsource(BaseManager.sid_from_eio_sid)
    room = LeanRoom()
    room["sid"] = "eio"
    assert room._fwdm is room and "sid" in room and len(room) == 1


async def test_rooms_are_plain_dicts_and_still_deliver(server, peers):
    boss = await admin(server, peers)
    assert (await boss.call("/rooms", "CREATE_ROOM", "tavern"))["status"] == "ok"
    web = await connect(server, peers, "web", namespaces=("/", "/llm", "/rooms"))
    sio = server.app.sio
    rooms = sio.manager.rooms
    presence = server.app.presence
    mine = [ref for ref in presence.sockets.values() if ref.principal.identity == "web"]
    assert {ref.namespace for ref in mine} == {"/", "/llm", "/rooms"}
    for ref in mine:
        assert isinstance(rooms[ref.namespace][None], bidict)  # the roster: looked up backwards
        assert type(rooms[ref.namespace][ref.sid]) is LeanRoom
        assert type(rooms[ref.namespace][room_addr("web")]) is LeanRoom
    # a room entered later, and delivery to it, to a room and to one socket
    added = {"clientId": "web", "roomName": "tavern"}
    assert (await boss.call("/rooms", "ADD_CLIENT_TO_ROOM", added))["status"] == "ok"
    for ns in ("/rooms", "/"):
        assert (await web.next(ns, "MEMBER_ROLE_CHANGED"))["roomName"] == "tavern"
        assert (await boss.next(ns, "MEMBER_JOINED"))["identity"] == "web"
        assert type(rooms[ns][room_addr("tavern")]) is LeanRoom
    ack = await web.call("/llm", "UNKNOWN_EVENT", {})  # an ack to this socket only
    assert ack["status"] == "error"
    # gone: nothing of it is left in the manager
    await web.close()
    sids = {ref.sid for ref in mine}

    def forgotten() -> bool:
        return not any(
            sid in room for by_name in rooms.values() for room in by_name.values() for sid in sids
        )

    await eventually(forgotten)
    assert room_addr("web") not in rooms.get("/llm", {})


async def test_sockets_of_one_identity_share_one_principal(server, peers):
    await connect(server, peers, "web", identity="web#1", namespaces=("/", "/llm"))
    await connect(server, peers, "web", identity="web#2", namespaces=("/", "/llm"))
    presence = server.app.presence
    first = [r for r in presence.sockets.values() if r.principal.identity == "web#1"]
    second = [r for r in presence.sockets.values() if r.principal.identity == "web#2"]
    assert len(first) == len(second) == 2
    assert first[0].principal is first[1].principal
    assert first[0].principal is presence.sessions["web#1"].principal
    # the clientId, type and address each connect sent are one string for all
    a, b = first[0].principal, second[0].principal
    assert a is not b
    assert a.client_id is b.client_id and a.client_type is b.client_type and a.peer is b.peer


async def test_a_new_description_still_wins(server, peers):
    await connect(server, peers, "web", namespaces=("/",), desc="old")
    await connect(server, peers, "web", namespaces=("/llm",), desc="new")
    presence = server.app.presence
    assert presence.sessions["web"].principal.desc == "new"
    refs = {r.namespace: r for r in presence.sockets.values() if r.principal.identity == "web"}
    assert refs["/"].principal.desc == "old" and refs["/llm"].principal.desc == "new"


def test_a_log_line_is_formatted_once_for_every_handler(tmp_path):
    formatter = LineFormatter()
    record = logging.LogRecord("newage", logging.INFO, __file__, 1, "hello %s", ("you",), None)
    line = formatter.format(record)
    assert line.endswith(" - info - hello you")
    assert formatter.format(record) is line
    # a non-regular file (here /dev/null behind a link) never rotates
    link = tmp_path / "null.log"
    link.symlink_to("/dev/null")
    handler = LogFile(link, maxBytes=10, backupCount=1, encoding="utf-8")
    handler.setFormatter(formatter)
    try:
        assert not handler.shouldRollover(record)
        regular = LogFile(tmp_path / "real.log", maxBytes=10, backupCount=1, encoding="utf-8")
        regular.setFormatter(formatter)
        assert regular.shouldRollover(record)  # the line alone is over 10 bytes
        regular.close()
    finally:
        handler.close()


def test_a_log_file_counts_its_bytes_across_opens_and_rotations(tmp_path):
    # the size is read when the file is opened and then counted, in bytes
    path = tmp_path / "sized.log"
    path.write_text("x" * 900)
    handler = LogFile(path, maxBytes=1000, backupCount=3, encoding="utf-8")
    handler.setFormatter(LineFormatter())
    try:
        for i in range(60):
            text = "é" * 30  # 60 bytes in 30 characters
            rec = logging.LogRecord("newage", logging.INFO, __file__, 1, text, (), None)
            handler.handle(rec)
            assert path.stat().st_size <= 1000, i
    finally:
        handler.close()
    rotated = tmp_path / "sized.log.1"
    assert rotated.stat().st_size <= 1000
    assert rotated.read_text(encoding="utf-8").count("é" * 30) > 5  # not one line per file
    assert (tmp_path / "sized.log.3").exists()


async def test_log_lines_of_the_event_loop_are_written_in_batches(tmp_path):
    setup_logging(tmp_path, "info", console=False)
    combined = tmp_path / "combined.log"
    try:
        for i in range(50):
            log.info("batched %d", i)
        # blocking on purpose: the writer thread has time, the loop's timer none
        time.sleep(0.2)  # noqa: ASYNC251
        assert " - batched " not in combined.read_text()
        await asyncio.sleep(BATCH_SECONDS + 0.2)
        lines = [x for x in combined.read_text().splitlines() if " - batched " in x]
        assert [x.split(" - batched ")[1] for x in lines] == [str(i) for i in range(50)]
        log.info("the last one")  # its batch is still waiting when logging stops
    finally:
        shutdown_logging()
    assert combined.read_text().splitlines()[-1].endswith(" - info - the last one")
    assert "the last one" in (tmp_path / "info.log").read_text()


def test_log_lines_outside_an_event_loop_go_at_once(tmp_path):
    setup_logging(tmp_path, "info", console=False)
    try:
        log.warning("no loop here")
        deadline = time.monotonic() + 2
        while "no loop here" not in (tmp_path / "warn.log").read_text():
            assert time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        shutdown_logging()


def test_a_batch_waiting_on_a_stopped_loop_does_not_hold_back_the_next_loop(tmp_path):
    setup_logging(tmp_path, "info", console=False)
    combined = tmp_path / "combined.log"

    async def first() -> None:
        log.info("from a loop that stops at once")

    async def second() -> None:
        log.info("from the next loop")
        await asyncio.sleep(BATCH_SECONDS + 0.3)

    try:
        asyncio.run(first())
        asyncio.run(second())
        text = combined.read_text()
        assert "from a loop that stops at once" in text and "from the next loop" in text
    finally:
        shutdown_logging()


async def test_a_closed_connection_is_not_held_by_its_ping_timer(server, peers):
    # The ping timer held each closed socket (its queue, environ, websocket,
    # lane) for a ping interval: under reconnects, thousands of dead
    # connections aged into the collector's oldest generation.
    eio = server.app.sio.eio
    before = set(eio.sockets)
    web = await connect(server, peers, "web", namespaces=("/llm",))
    (sid,) = set(eio.sockets) - before
    sock = eio.sockets[sid]
    timer = sock._ping_timer
    assert timer is not None and not timer.cancelled()
    await web.close()
    await eventually(lambda: sid not in eio.sockets)
    assert timer.cancelled() and sock._ping_timer is None  # a cancelled handle lets go


async def test_a_closed_connection_leaves_its_socket_to_reference_counting(server, peers):
    # The websocket protocol and its transport refer to each other and wait
    # for the cyclic collector; the lane lets go of the Engine.IO socket (its
    # queue, environ, websocket) so that does not wait with them.
    eio = server.app.sio.eio
    before = set(eio.sockets)
    web = await connect(server, peers, "web", namespaces=("/llm",))
    (sid,) = set(eio.sockets) - before
    lane = eio.sockets[sid].queue.notify.__self__
    assert lane.sock is eio.sockets[sid] and lane.ws is not None
    await web.close()
    await eventually(lambda: lane.sock is None)
    assert lane.ws is None and lane.closer is None
