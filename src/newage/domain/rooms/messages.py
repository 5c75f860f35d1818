"""History operations: edit, delete, clear, full context and catch-up.

Permissions (docs/protocol.md): a request or system message may be changed by
its author, the room's master and managers, and admins; a response by the
room's master and managers, admins and the member whose request it answers.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import Callable
from typing import Any

import orjson

from newage.clock import iso, iso_now, parse_iso
from newage.domain.identity.principal import Principal
from newage.domain.ports.delivery import Outbox, split_addr
from newage.domain.ports.store import MessageKind, Store
from newage.domain.rooms.history import History
from newage.domain.rooms.model import Room, is_moderator
from newage.domain.rooms.service import RoomService
from newage.errors import bad_request, forbidden, not_found
from newage.logs import log
from newage.protocol.acks import OK, ContextStarted, HistoryPage, OfflineSent
from newage.protocol.names import Ev, Namespace
from newage.protocol.outbound import (
    Context,
    ContextPage,
    MessagesCleared,
    MessagesDeleted,
    MessageUpdated,
    OfflineMessages,
)
from newage.settings import LiveSettings

# Fields nobody may change by editing.
FROZEN = frozenset(
    {
        "messageId",
        "responseId",
        "identity",
        "timestamp",
        "fromClient",
        "isResponse",
        "isSystem",
        "roomName",
        "requestId",
        "requester",
        "fromLlm",
        "outputId",
        "source",
        "type",
        "status",
        "role",
        "incomplete",
    }
)
UPDATE_CONTEXT_LIMIT = 1000  # UPDATE_CONTEXT repeats the pages; only for small rooms
OFFLINE_BATCH = 500


def within(bodies: list[dict[str, Any]], budget: int) -> list[dict[str, Any]]:
    """The first of ``bodies`` whose JSON fits in ``budget`` bytes (at least
    one, which is itself bounded by the answer and payload limits)."""
    for n, body in enumerate(bodies):
        budget -= len(orjson.dumps(body))
        if budget < 0:
            return bodies[: max(1, n)]
    return bodies


def may_change(room: Room, actor: Principal, message: dict[str, Any]) -> bool:
    if is_moderator(room, actor):
        return True
    if message.get("isResponse"):
        return message.get("requester") == actor.identity
    return message.get("identity") == actor.identity and not message.get("isSystem")


class MessageService:
    def __init__(
        self,
        store: Store,
        outbox: Outbox,
        rooms: RoomService,
        live: LiveSettings,
        audience: Callable[[str], list[str]],
        history: History,
    ) -> None:
        self.history = history
        self.store = store
        self.outbox = outbox
        self.rooms = rooms
        self.live = live
        self.audience = audience
        self._pagers: dict[tuple[str, str], asyncio.Task[None]] = {}

    def _room_for(self, actor: Principal, room_name: Any) -> Room:
        if not isinstance(room_name, str) or not room_name:
            raise bad_request("roomName is required.")
        room = self.rooms.get(room_name)
        if not (actor.is_admin or actor.identity in room.members):
            raise forbidden(f"You are not a member of room {room.name}.")
        return room

    async def _announce(
        self, room: str, event: str, data: MessageUpdated | MessagesDeleted | MessagesCleared
    ) -> None:
        self.history.forget(room)  # every announced change altered the history
        self.outbox.emit(Namespace.LLM, event, data, self.audience(room))

    # ------------------------------------------------------------------ edit / delete / clear
    async def edit(
        self,
        actor: Principal,
        room_name: Any,
        ids: list[str],
        fields: dict[str, Any],
        from_llm: bool | None,
    ) -> dict[str, Any]:
        room = self._room_for(actor, room_name)
        found = await self.store.get_messages(room.name, ids)
        if from_llm is not None:
            found = [m for m in found if bool(m.body.get("isResponse")) == from_llm]
        if not found:
            raise not_found("Failed to edit message. It might not exist.")
        stored = found[0]
        if not may_change(room, actor, stored.body):
            raise forbidden("Unauthorized")
        changes = {k: v for k, v in fields.items() if k not in FROZEN}
        if not changes:
            raise bad_request("Nothing to change: these fields cannot be edited.")
        body = dict(stored.body)
        if "message" in changes and "data" not in changes and isinstance(body.get("data"), str):
            changes["data"] = changes["message"]  # both carry the text
        elif "data" in changes and "message" not in changes and isinstance(changes["data"], str):
            changes["message"] = changes["data"]
        body.update(changes)
        body["lastEdited"] = iso_now()
        body["editedBy"] = actor.identity
        await self.store.update_message(room.name, stored.seq, body)
        updated: MessageUpdated = {"roomName": room.name, "message": body}
        await self._announce(room.name, Ev.MESSAGE_UPDATED, updated)
        return body

    async def delete(self, actor: Principal, room_name: Any, ids: list[str]) -> list[str]:
        room = self._room_for(actor, room_name)
        found = await self.store.get_messages(room.name, ids)
        denied = [m for m in found if not may_change(room, actor, m.body)]
        if denied:  # all or nothing
            raise forbidden("Unauthorized")
        removed = await self.store.delete_messages(room.name, ids) if found else []
        if removed:
            deleted: MessagesDeleted = {"roomName": room.name, "messageIds": removed}
            await self._announce(room.name, Ev.MESSAGES_DELETED, deleted)
        return removed

    async def clear(self, actor: Principal, room_name: Any, requests: bool, responses: bool) -> int:
        if not isinstance(room_name, str) or not room_name:
            raise bad_request("roomName is required to clear messages.")
        room = self.rooms.get(room_name)
        if not is_moderator(room, actor):
            raise forbidden("Permission denied to clear messages.")
        kinds: list[MessageKind] = []
        if requests:
            kinds += ["request", "system"]
            await self.store.queue_clear(room.name)
        if responses:
            kinds.append("response")
        count = await self.store.clear_messages(room.name, kinds)
        if count:
            cleared: MessagesCleared = {
                "roomName": room.name,
                "clearedRequests": requests,
                "clearedResponses": responses,
            }
            await self._announce(room.name, Ev.MESSAGES_CLEARED, cleared)
        return count

    # ------------------------------------------------------------------ reading
    async def full_context(self, actor: Principal, sid: str, room_name: Any) -> ContextStarted:
        """Count now, then page the history to ``sid`` in the background."""
        room = self._room_for(actor, room_name)
        total = await self.store.count_messages(room.name)
        size = self.live.current.context_page_size
        pages = max(1, math.ceil(total / size))
        update_id = str(uuid.uuid4())
        self.page_to(sid, room.name, update_id, total)
        return {
            **OK,
            "roomName": room.name,
            "totalMessages": total,
            "totalPages": pages,
            "updateId": update_id,
        }

    async def history_page(
        self, actor: Principal, room_name: Any, before: int | None, limit: int
    ) -> HistoryPage:
        """The newest ``limit`` messages (before the cursor ``before``),
        oldest first: a reader shows the end of a big room at once and goes
        back page by page."""
        room = self._room_for(actor, room_name)
        if before is None:
            stored = await self.store.latest_messages(room.name, limit)
        else:
            stored = await self.store.messages_before(room.name, before, limit)
        # the newest are kept when the page is over its byte budget
        kept = within([m.body for m in reversed(stored)], self.live.current.history_page_bytes)
        stored = stored[len(stored) - len(kept) :]
        cursor = stored[0].seq if stored else None
        older = cursor is not None and bool(await self.store.messages_before(room.name, cursor, 1))
        return {
            **OK,
            "roomName": room.name,
            "messages": [m.body for m in stored],
            "before": cursor,
            "hasMore": older,
            "totalMessages": await self.store.count_messages(room.name),
        }

    def page_to(self, address: str, room: str, update_id: str, total: int) -> None:
        """Start paging ``room`` to ``address`` (a socket or a room), replacing
        a paging still running for the same pair (newest wins)."""
        key = (address, room)
        running = self._pagers.pop(key, None)
        if running is not None:
            running.cancel()
        task = asyncio.get_running_loop().create_task(self._pages(address, room, update_id, total))
        self._pagers[key] = task
        task.add_done_callback(
            lambda t: self._pagers.pop(key, None) if self._pagers.get(key) is t else None
        )

    async def _pages(self, address: str, room: str, update_id: str, total: int) -> None:
        settings = self.live.current
        size, delay = settings.context_page_size, settings.context_send_delay / 1000
        pages = max(1, math.ceil(total / size))
        after = 0
        budget = settings.history_page_bytes
        keep: list[dict[str, Any]] | None = [] if total <= UPDATE_CONTEXT_LIMIT else None
        kept_bytes = 0
        try:
            number = 0
            while True:
                number += 1
                batch = await self.store.page_messages(room, after, size)
                page = within([m.body for m in batch], budget)
                if page:
                    after = batch[len(page) - 1].seq
                if keep is not None:
                    kept_bytes += sum(len(orjson.dumps(b)) for b in page)
                    keep = keep + page if kept_bytes <= budget else None
                # a page cut short by bytes adds one: totalPages is an estimate
                cut = len(page) < len(batch)
                last = not cut and (number >= pages or len(batch) < size)
                if cut and number >= pages:
                    pages = number + 1
                chunk: ContextPage = {
                    "updateId": update_id,
                    "roomName": room,
                    "pageNumber": number,
                    "totalPages": pages,
                    "isLastPage": last,
                    "contextPage": page,
                }
                self.outbox.emit(Namespace.LLM, Ev.UPDATE_CONTEXT_PAGE, chunk, [address])
                if last:
                    break
                # one page at a time: the next is read once this one is out
                # (to one socket; the legacy room broadcast is paced by delay)
                one_socket = split_addr(address)[0] == ""
                if one_socket and not await self.outbox.sent(address, Namespace.LLM):
                    return
                if delay:
                    await asyncio.sleep(delay)
            if keep is not None and settings.emit_update_context:
                whole: Context = {"roomName": room, "updateId": update_id, "context": keep}
                self.outbox.emit(Namespace.LLM, Ev.UPDATE_CONTEXT, whole, [address])
        except Exception:
            log.exception("paging %s to %s failed", room, address)

    async def offline(
        self, actor: Principal, sid: str, room_name: Any, since: Any
    ) -> ContextStarted | OfflineSent:
        """Everything after ``since`` as OFFLINE_MESSAGES batches (oldest first)."""
        if since is None:
            return await self.full_context(actor, sid, room_name)
        room = self._room_for(actor, room_name)
        try:
            since_iso = iso(parse_iso(str(since)))
        except ValueError:
            raise bad_request("since must be an ISO-8601 timestamp.") from None
        # read and send a batch at a time: a long absence must not load the
        # whole history at once
        total = after = 0
        more = True
        budget = self.live.current.history_page_bytes
        while more:
            rows = await self.store.messages_since(room.name, since_iso, after, OFFLINE_BATCH + 1)
            bodies = within([m.body for m in rows[:OFFLINE_BATCH]], budget)
            batch = rows[: len(bodies)]
            more = len(rows) > len(batch)
            sent: OfflineMessages = {
                "roomName": room.name,
                "since": since_iso,
                "messages": [m.body for m in batch],
                "hasMore": more,
            }
            self.outbox.emit(Namespace.LLM, Ev.OFFLINE_MESSAGES, sent, [sid])
            total += len(batch)
            after = batch[-1].seq if batch else after
            # a batch at a time: memory stays one batch whatever the room's size
            if more and not await self.outbox.sent(sid, Namespace.LLM):
                break
        return {**OK, "roomName": room.name, "since": since_iso, "totalMessages": total}

    def stop_paging(self, sid: str) -> None:
        for key in [k for k in self._pagers if k[0] == sid]:
            self._pagers.pop(key).cancel()
