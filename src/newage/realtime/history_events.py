"""``EDIT_MESSAGE``, ``DELETE_MESSAGE``, ``CLEAR_MESSAGES`` and
``GET_HISTORY_PAGE``: on ``/llm`` and, as the original's documentation lists
the first three, on ``/rooms`` too."""

from __future__ import annotations

from typing import TYPE_CHECKING

from newage.domain.identity.presence import SocketRef
from newage.errors import bad_request
from newage.protocol.acks import OK, Cleared, Deleted, Edited, HistoryPage
from newage.protocol.llm import ClearIn, DeleteIn, EditIn, HistoryPageIn
from newage.protocol.names import Ev
from newage.realtime.base import on

if TYPE_CHECKING:
    from newage.services import Services


class HistoryEvents:
    services: Services

    @on(Ev.EDIT_MESSAGE, model=EditIn)
    async def edit(self, ref: SocketRef, data: EditIn) -> Edited:
        ids = [i for i in (data.message_id, data.response_id) if i]
        if not ids or not data.room_name or not isinstance(data.updated_fields, dict):
            raise bad_request("Missing required fields for editing message.")
        message = await self.services.messages.edit(
            ref.principal, data.room_name, ids, data.updated_fields, data.from_llm
        )
        return {**OK, "message": message}

    @on(Ev.DELETE_MESSAGE, model=DeleteIn)
    async def delete(self, ref: SocketRef, data: DeleteIn) -> Deleted:
        if not data.ids or not data.room_name:
            raise bad_request("Missing required fields for deleting messages.")
        removed = await self.services.messages.delete(ref.principal, data.room_name, data.ids)
        if not removed:
            return {
                **OK,
                "messageIds": [],
                "message": "No matching messages found to delete or operation failed.",
            }
        return {**OK, "messageIds": removed}

    @on(Ev.CLEAR_MESSAGES, model=ClearIn)
    async def clear(self, ref: SocketRef, data: ClearIn) -> Cleared:
        count = await self.services.messages.clear(
            ref.principal, data.room_name, data.clear_requests, data.clear_responses
        )
        if not count:
            return {**OK, "cleared": 0, "message": "Messages already cleared or operation failed."}
        return {**OK, "cleared": count}

    @on(Ev.GET_HISTORY_PAGE, model=HistoryPageIn)
    async def history_page(self, ref: SocketRef, data: HistoryPageIn) -> HistoryPage:
        return await self.services.messages.history_page(
            ref.principal, data.room_name, data.before, data.limit
        )
