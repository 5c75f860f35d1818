"""The SDK's client: rooms, requests with streamed answers, history, events.

A ``Client`` holds one connection with the namespaces ``/``, ``/llm`` and
``/rooms``. After the connection drops, python-socketio reconnects, and
every answer still open is resumed with ``RESUME_STREAM`` from the last
``seq`` it saw; when the server cannot replay (the stream log is gone, or a
server without it), the answer is settled from the room's history.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

from newage.protocol.names import PONG_TEXT, Ev, Namespace
from newage.sdk._conn import Connection
from newage.sdk.answer import Answer
from newage.sdk.errors import NewAgeError
from newage.sdk.events import (
    TERMINAL,
    Delta,
    Event,
    HistoryPage,
    MemberStatus,
    RequestStatus,
    RoomMessage,
    StreamEnd,
)

LLM, ROOMS = Namespace.LLM, Namespace.ROOMS


class Subscription:
    """The client's events from the moment it was made, in arrival order."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue()

    def put(self, event: Event | None) -> None:
        self._queue.put_nowait(event)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        event = await self._queue.get()
        if event is None:
            raise StopAsyncIteration
        return event

    def close(self) -> None:
        self._client._subs.discard(self)
        self.put(None)


class Client:
    def __init__(
        self,
        url: str,
        client_id: str,
        key: str,
        *,
        identity: str | None = None,
        client_type: str | None = None,
        desc: str | None = None,
        timeout: float = 10,
        reconnection: bool = True,
        socketio_path: str = "socket.io",
    ) -> None:
        self.client_id = client_id
        self.identity = identity or client_id
        auth: dict[str, Any] = {"clientId": client_id, "key": key, "identity": self.identity}
        if client_type is not None:
            auth["clientType"] = client_type
        if desc is not None:
            auth["desc"] = desc
        self._conn = Connection(
            url,
            (Namespace.DEFAULT, LLM, ROOMS),
            lambda: auth,
            reconnection=reconnection,
            timeout=timeout,
            socketio_path=socketio_path,
        )
        self._answers: dict[str, Answer] = {}
        self._subs: set[Subscription] = set()
        self._pages: dict[str, asyncio.Queue[dict[str, Any]]] = {}
        self._history_locks: dict[str, asyncio.Lock] = {}
        self._connected_once = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._wire()

    @property
    def connection(self) -> Connection:
        return self._conn

    # ------------------------------------------------------------ lifecycle
    async def connect(self) -> Client:
        await self._conn.connect()
        return self

    async def close(self) -> None:
        for sub in list(self._subs):
            sub.close()
        for task in list(self._tasks):
            task.cancel()
        await self._conn.close()

    async def __aenter__(self) -> Client:
        return await self.connect()

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    def events(self) -> Subscription:
        """Room messages, member and request status, stream deltas and ends."""
        sub = Subscription(self)
        self._subs.add(sub)
        return sub

    # ------------------------------------------------------------ rooms
    async def _paged(self, event: str, field: str, data: dict[str, Any]) -> list[dict[str, Any]]:
        """Every item of a paged list (``nextOffset`` names the next page)."""
        items: list[dict[str, Any]] = []
        ack = await self._conn.call(ROOMS, event, data or None)
        while True:
            page = ack.get(field)
            items += page if isinstance(page, list) else []
            offset = ack.get("nextOffset")
            if not isinstance(offset, int) or not page:
                return items
            ack = await self._conn.call(ROOMS, event, {**data, "offset": offset})

    async def rooms(self) -> list[dict[str, Any]]:
        """The rooms this client is in (every room for admins)."""
        return await self._paged(Ev.GET_ROOMS, "roomDetails", {})

    async def create_room(self, name: str) -> dict[str, Any]:
        return await self._conn.call(ROOMS, Ev.CREATE_ROOM, {"roomName": name})

    async def delete_room(self, name: str) -> None:
        await self._conn.call(ROOMS, Ev.DELETE_ROOM, {"roomName": name})

    async def join_room(self, room: str, identity: str | None = None, role: str = "guest") -> None:
        """Add ``identity`` (default: this client) to ``room``: for its master,
        managers and admins."""
        data = {"identity": identity or self.identity, "roomName": room, "role": role}
        await self._conn.call(ROOMS, Ev.ADD_CLIENT_TO_ROOM, data)

    async def leave_room(self, room: str, identity: str | None = None) -> None:
        data = {"identity": identity or self.identity, "roomName": room}
        await self._conn.call(ROOMS, Ev.REMOVE_CLIENT_FROM_ROOM, data)

    async def members(self, room: str) -> list[dict[str, Any]]:
        return await self._paged(Ev.GET_CLIENTS_IN_ROOM, "clients", {"roomName": room})

    # ------------------------------------------------------------ requests
    async def ask(
        self,
        text: str,
        *,
        room: str | None = None,
        target: str | list[str] | None = None,
        request_id: str | None = None,
        **fields: Any,
    ) -> Answer:
        """Send a request; iterate the returned :class:`Answer` for its deltas.

        ``fields`` travel with the request (the extension finds them in
        ``currentRequest``). A refusal raises :class:`NewAgeError` with the
        server's code.
        """
        request_id = request_id or str(uuid.uuid4())
        answer = Answer(request_id, room)
        # registered before sending: the first chunks may beat the ack
        self._answers[request_id] = answer
        payload: dict[str, Any] = {**fields, "requestId": request_id, "message": text}
        if room is not None:
            payload["targetRoom"] = room
        if target is not None:
            payload["target"] = target
        try:
            ack = await self._conn.call(LLM, Ev.LLM_REQUEST, payload)
        except NewAgeError:
            self._answers.pop(request_id, None)
            raise
        answer.ack = ack
        answer.room = str(ack.get("roomName") or answer.room)
        epoch, position = ack.get("epoch"), ack.get("position")
        answer.epoch = epoch if isinstance(epoch, str) else None
        if isinstance(position, int) and position > 0:  # waiting in the extension's queue
            answer.status, answer.position = "queued", position
        if ack.get("duplicate"):
            self._duplicate(answer, ack)
        elif ack.get("forwarded") is False:
            answer.finish(
                "queued" if ack.get("queued") else "not_forwarded", str(ack.get("message") or "")
            )
        return answer

    def _duplicate(self, answer: Answer, ack: dict[str, Any]) -> None:
        """A request id used before is never answered twice: the server acks
        with the first request's state; a finished one's answers come along."""
        status = ack.get("requestStatus")
        if status not in TERMINAL:
            return  # still open: its events come as for the first
        answers = ack.get("answers")
        for item in answers if isinstance(answers, list) else []:
            if isinstance(item, dict) and isinstance(item.get("text"), str):
                answer.catch_up(str(item.get("identity") or ""), item["text"])
        answer.finish(str(status))
        self._answers.pop(answer.request_id, None)

    async def complete(self, text: str, *, timeout: float | None = None, **kw: Any) -> str:
        """The non-stream variant: the whole answer's text."""
        answer = await self.ask(text, **kw)
        async with asyncio.timeout(timeout):
            return await answer.result()

    async def cancel(self, request_id: str) -> dict[str, Any]:
        """``CANCEL_REQUEST``; the answer then ends with status ``cancelled``."""
        return await self._conn.call(LLM, Ev.CANCEL_REQUEST, {"requestId": request_id})

    async def history(self, room: str) -> AsyncIterator[HistoryPage]:
        """The room's history, page by page, oldest first."""
        lock = self._history_locks.setdefault(room, asyncio.Lock())
        async with lock:
            queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
            self._pages[room] = queue  # before the call: pages may beat the ack
            try:
                ack = await self._conn.call(LLM, Ev.GET_FULL_CONTEXT, {"roomName": room})
                update_id = ack.get("updateId")
                while True:
                    async with asyncio.timeout(self._conn.timeout):
                        page = await queue.get()
                    if page.get("updateId") != update_id:
                        continue
                    messages = page.get("contextPage")
                    item = HistoryPage(
                        room,
                        int(page.get("pageNumber") or 0),
                        int(page.get("totalPages") or 0),
                        bool(page.get("isLastPage")),
                        list(messages) if isinstance(messages, list) else [],
                    )
                    yield item
                    if item.last:
                        return
            finally:
                self._pages.pop(room, None)

    async def messages(self, room: str) -> list[dict[str, Any]]:
        """The room's whole history."""
        return [m async for page in self.history(room) for m in page.messages]

    # ------------------------------------------------------------ events in
    def _wire(self) -> None:
        on = self._conn.on
        on(LLM, "connect", self._on_connect)
        on(LLM, Ev.SERVER_STREAM_DATA, self._on_data)
        on(LLM, Ev.SERVER_STREAM_END, self._on_end)
        on(LLM, Ev.MESSAGE, self._on_message)
        on(LLM, Ev.LLM_RESPONSE, self._on_response)
        on(LLM, Ev.REQUEST_STATUS_UPDATE, self._on_status)
        on(LLM, Ev.ERROR, self._on_error)
        on(LLM, Ev.NEW_MESSAGE, lambda p: self._publish(p, RoomMessage.parse))
        on(LLM, Ev.MEMBER_STATUS_UPDATE, lambda p: self._publish(p, MemberStatus.parse))
        on(LLM, Ev.UPDATE_CONTEXT_PAGE, self._on_page)

    def _publish(self, payload: Any, parse: Any) -> Any:
        if not isinstance(payload, dict):
            return None
        event = parse(payload)
        for sub in self._subs:
            sub.put(event)
        return event

    def _answer(self, payload: Any) -> Answer | None:
        if not isinstance(payload, dict):
            return None
        return self._answers.get(str(payload.get("requestId")))

    def _on_data(self, payload: Any) -> None:
        answer = self._answer(payload)
        if answer is not None:
            answer.on_data(payload)
        if self._subs and isinstance(payload, dict):
            seq, data = payload.get("seq"), payload.get("data")
            delta = Delta(
                str(payload.get("requestId") or ""),
                str(payload.get("outputId") or ""),
                data if isinstance(data, str) else "",
                seq if isinstance(seq, int) else None,
                str(payload.get("roomName") or ""),
            )
            for sub in self._subs:
                sub.put(delta)

    def _on_end(self, payload: Any) -> None:
        answer = self._answer(payload)
        if answer is not None:
            answer.on_whole(payload)
        self._publish(payload, StreamEnd.parse)

    def _on_message(self, payload: Any) -> None:
        answer = self._answer(payload)
        if answer is not None and payload.get("data") != PONG_TEXT:
            answer.on_whole(payload)

    def _on_response(self, payload: Any) -> None:
        answer = self._answer(payload)
        if answer is not None:
            answer.on_whole(payload)

    def _on_status(self, payload: Any) -> None:
        answer = self._answer(payload)
        if answer is not None:
            answer.on_status(payload)
            if answer.done:
                self._answers.pop(answer.request_id, None)
        self._publish(payload, RequestStatus.parse)

    def _on_error(self, payload: Any) -> None:
        answer = self._answer(payload)
        if answer is not None:
            answer.on_error(payload)

    def _on_page(self, payload: Any) -> None:
        if isinstance(payload, dict):
            queue = self._pages.get(str(payload.get("roomName")))
            if queue is not None:
                queue.put_nowait(payload)

    # ------------------------------------------------------------ resume
    def _on_connect(self) -> None:
        if not self._connected_once:
            self._connected_once = True
            return
        for answer in list(self._answers.values()):
            task = asyncio.get_running_loop().create_task(self._resume(answer))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _resume(self, answer: Answer) -> None:
        """Replay what was missed; settle from history when that is impossible."""
        data: dict[str, Any] = {"requestId": answer.request_id, "afterSeq": answer.last_seq}
        if answer.last_output:
            data["outputId"] = answer.last_output
        if answer.epoch:
            data["epoch"] = answer.epoch  # another epoch: the server restarted, the log is gone
        try:
            ack = await self._conn.call(LLM, Ev.RESUME_STREAM, data)
        except NewAgeError:
            ack = None
        status = ack.get("requestStatus") if ack is not None else None
        if ack is not None and not (ack.get("complete") and status is None):
            # the replay (and the end of a finished output) came before the ack;
            # the final status may have been missed while away
            if ack.get("complete") and status in TERMINAL:
                answer.finish(str(status))
                self._answers.pop(answer.request_id, None)
            return
        # no replay, or a finished request the server no longer tracks: the
        # history has what was missed (read after the resume was handled, so
        # nothing live is lost in between)
        with contextlib.suppress(NewAgeError, TimeoutError):
            await self._settle(answer)

    async def _settle(self, answer: Answer) -> None:
        records = [
            m
            for m in await self.messages(answer.room)
            if m.get("requestId") == answer.request_id and m.get("isResponse")
        ]
        for record in records:
            answer.on_whole(record)
        statuses = [r.get("status") or "completed" for r in records]
        if statuses and all(s in TERMINAL for s in statuses):
            best = next(
                (s for s in ("completed", "stopped", "cancelled") if s in statuses), "failed"
            )
            answer.finish(str(best), str(records[-1].get("error") or ""))
            self._answers.pop(answer.request_id, None)
