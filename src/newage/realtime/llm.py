"""``/llm``: LLM requests, token streaming and chat history."""

from __future__ import annotations

import uuid
from typing import Any

from newage.domain.identity.presence import SocketRef
from newage.domain.identity.principal import require_admin
from newage.errors import bad_request, forbidden
from newage.protocol.acks import (
    OK,
    Cancelled,
    ContextStarted,
    ExtensionStates,
    OfflineSent,
    Ok,
    Pong,
    Reported,
    Reprioritized,
    RequestAccepted,
    RequestState,
    Resumed,
)
from newage.protocol.llm import (
    CancelIn,
    ContextIn,
    ExtensionErrorIn,
    LlmRequestIn,
    NonStreamIn,
    PriorityIn,
    ResumeIn,
    RoomRefIn,
    StreamDataIn,
    StreamEndIn,
    StreamStartIn,
)
from newage.protocol.names import (
    PING_TEXT,
    PONG_TEXT,
    Ev,
    MemberStatus,
    RequestStatus,
    StreamType,
)
from newage.protocol.outbound import NonStream
from newage.realtime.base import BaseNamespace, on
from newage.realtime.fast_stream import FastStreamPath
from newage.realtime.history_events import HistoryEvents


def _extension(ref: SocketRef) -> str:
    if not ref.principal.is_extension:
        raise forbidden("Only extensions may send responses.")
    return ref.principal.identity


def _type(actual: int, expected: int) -> None:
    if actual != expected:
        raise bad_request(f"Invalid stream type {actual} (expected {expected}).")


class LlmNamespace(HistoryEvents, BaseNamespace):
    fast: FastStreamPath  # attached by the app once the server exists

    async def closed(self, ref: SocketRef) -> None:
        self.services.messages.stop_paging(ref.sid)
        await super().closed(ref)

    # ------------------------------------------------------------------ requests
    @on(Ev.LLM_REQUEST, model=LlmRequestIn, invalid="Invalid LLM request data.")
    async def llm_request(
        self, ref: SocketRef, data: LlmRequestIn
    ) -> RequestAccepted | RequestState:
        return await self.services.chat.request(ref.principal, ref.sid, data)

    @on(Ev.CANCEL_REQUEST, model=CancelIn)
    async def cancel_request(self, ref: SocketRef, data: CancelIn) -> Cancelled:
        return await self.services.chat.cancel(data.request_id, ref.principal)

    @on(Ev.RESUME_STREAM, model=ResumeIn)
    async def resume_stream(self, ref: SocketRef, data: ResumeIn) -> Resumed:
        return await self.services.resumer.resume_anywhere(
            ref.principal, ref.sid, data.request_id, data.after_seq, data.output_id, data.epoch
        )

    @on(Ev.GET_REQUEST, model=CancelIn)
    async def get_request(self, ref: SocketRef, data: CancelIn) -> RequestState:
        return await self.services.chat.find(data.request_id, ref.principal)

    @on(Ev.SET_REQUEST_PRIORITY, model=PriorityIn)
    async def set_priority(self, ref: SocketRef, data: PriorityIn) -> Reprioritized:
        require_admin(ref.principal, self.services.live.current.network_safe)
        positions = await self.services.queues.set_priority_anywhere(data.request_id, data.priority)
        return {**OK, "requestId": data.request_id, "positions": positions}

    @on(Ev.GET_EXTENSIONS_STATE)
    async def extensions_state(self, ref: SocketRef, _: Any) -> ExtensionStates:
        require_admin(ref.principal, self.services.live.current.network_safe)
        return {**OK, "extensions": await self.services.liveness.all_states()}

    # ------------------------------------------------------------------ context
    @on(Ev.GET_FULL_CONTEXT, model=ContextIn)
    async def full_context(self, ref: SocketRef, data: ContextIn) -> ContextStarted:
        return await self.services.messages.full_context(ref.principal, ref.sid, data.room_name)

    @on(Ev.GET_OFFLINE_MESSAGES, model=ContextIn)
    async def offline(self, ref: SocketRef, data: ContextIn) -> ContextStarted | OfflineSent:
        return await self.services.messages.offline(
            ref.principal, ref.sid, data.room_name, data.since
        )

    # ------------------------------------------------------------------ presence in rooms
    @on(Ev.START_TYPING, model=RoomRefIn)
    async def start_typing(self, ref: SocketRef, data: RoomRefIn) -> Ok:
        if data.target_room is None:
            raise bad_request("targetRoom is required.")
        if not self.services.rooms.is_member(ref.principal.identity, data.target_room):
            raise forbidden(f"You are not a member of room {data.target_room}.")
        await self.services.status_board.set(
            ref.principal.identity, data.target_room, MemberStatus.TYPING
        )
        return {**OK}

    @on(Ev.STOP_TYPING, model=RoomRefIn)
    async def stop_typing(self, ref: SocketRef, data: RoomRefIn) -> Ok:
        identity = ref.principal.identity
        if data.target_room is None:
            await self.services.status_board.idle_everywhere(identity)
        elif self.services.rooms.is_member(identity, data.target_room):
            await self.services.status_board.set(identity, data.target_room, MemberStatus.IDLE)
        return {**OK}

    @on(Ev.START_PROCESSING, model=RoomRefIn)
    async def start_processing(self, ref: SocketRef, data: RoomRefIn) -> Ok:
        ext = _extension(ref)
        request = self.services.streams.resolve(ext, data.request_id)
        room = data.target_room or (request.room if request else None)
        if room is not None and room in self.services.rooms.rooms:
            await self.services.status_board.set(ext, room, MemberStatus.PROCESSING)
        if request is not None and request.open and request.request_id == data.request_id:
            # a generation without streaming is silent until its answer
            await self.services.responder.report_processing(request)
        return {**OK}

    @on(Ev.STOP_PROCESSING, model=RoomRefIn)
    async def stop_processing(self, ref: SocketRef, data: RoomRefIn) -> Ok:
        ext = _extension(ref)
        await self.services.streams.stop(ext)  # ends the current output
        if data.target_room is not None and data.target_room in self.services.rooms.rooms:
            await self.services.status_board.set(ext, data.target_room, MemberStatus.IDLE)
        return {**OK}

    @on(Ev.ERROR, model=ExtensionErrorIn)
    async def extension_error(self, ref: SocketRef, data: ExtensionErrorIn) -> Reported:
        ext = _extension(ref)
        request = self.services.streams.resolve(ext, data.request_id)
        if request is None:
            return {**OK, "message": "No request in flight."}
        text = (
            data.message if isinstance(data.message, str) and data.message else "Generation failed."
        )
        if not await self.services.streams.report_error(ext, request, text, data.error):
            return {**OK, "message": "Request already finished.", "requestId": request.request_id}
        return {**OK, "requestId": request.request_id}

    # ------------------------------------------------------------------ answers
    @on(Ev.MESSAGE, model=NonStreamIn)
    async def message(self, ref: SocketRef, data: NonStreamIn) -> Reported | Pong:
        if data.data == PING_TEXT:
            pong: NonStream = {
                "type": 0,
                "data": PONG_TEXT,
                "source": "server",
                "requestId": data.request_id,
                "outputId": str(uuid.uuid4()),
            }
            await self.emit(Ev.MESSAGE, pong, to=ref.sid)
            return {
                **OK,
                "type": pong["type"],
                "data": pong["data"],
                "source": pong["source"],
                "requestId": pong["requestId"],
                "outputId": pong["outputId"],
            }
        ext = _extension(ref)
        if data.type != StreamType.NON_STREAM or not isinstance(data.data, str):
            raise bad_request("A non-stream message needs type 0 and a text in data.")
        output_id = data.output_id if isinstance(data.output_id, str) else str(uuid.uuid4())
        status = RequestStatus.STOPPED if data.stopped else RequestStatus.COMPLETED
        if not await self.services.streams.message(
            ext, data.data, data.request_id, output_id, status
        ):
            return {**OK, "message": "No request in flight."}
        return {**OK}

    @on(Ev.CLIENT_STREAM_START, model=StreamStartIn)
    async def stream_start(self, ref: SocketRef, data: StreamStartIn) -> None:
        ext = _extension(ref)
        _type(data.type, StreamType.STREAM_START)
        # numStreams is validated (the protocol's type) but nothing reads it
        await self.services.streams.start(ext, data.stream_id, data.output_id, data.request_id)

    async def _data(self, ref: SocketRef, data: StreamDataIn, expected: StreamType) -> None:
        ext = _extension(ref)
        _type(data.type, expected)
        self.services.metrics.stream_chunks.inc()
        await self.services.streams.data(
            ext, data.stream_id, data.chunk_index, data.data, data.type
        )

    @on(Ev.CLIENT_STREAM_DATA_FIRST, model=StreamDataIn)
    async def stream_first(self, ref: SocketRef, data: StreamDataIn) -> None:
        await self._data(ref, data, StreamType.STREAM_DATA_FIRST)

    @on(Ev.CLIENT_STREAM_DATA_MIDDLE, model=StreamDataIn)
    async def stream_middle(self, ref: SocketRef, data: StreamDataIn) -> None:
        await self._data(ref, data, StreamType.STREAM_DATA_MIDDLE)

    @on(Ev.CLIENT_STREAM_DATA_LAST, model=StreamDataIn)
    async def stream_last(self, ref: SocketRef, data: StreamDataIn) -> None:
        await self._data(ref, data, StreamType.STREAM_DATA_LAST)

    @on(Ev.CLIENT_STREAM_DATA_RETRY, model=StreamDataIn)
    async def stream_retry(self, ref: SocketRef, data: StreamDataIn) -> None:
        await self._data(ref, data, StreamType.STREAM_DATA_RETRY)

    @on(Ev.CLIENT_STREAM_DATA_FAILED, model=StreamDataIn)
    async def stream_failed(self, ref: SocketRef, data: StreamDataIn) -> None:
        ext = _extension(ref)
        _type(data.type, StreamType.STREAM_DATA_FAILED)
        await self.services.streams.failed(ext, data.stream_id)

    @on(Ev.CLIENT_STREAM_END, model=StreamEndIn)
    async def stream_end(self, ref: SocketRef, data: StreamEndIn) -> None:
        ext = _extension(ref)
        _type(data.type, StreamType.STREAM_END)
        await self.services.streams.end(ext, data.stream_id, data.final, RequestStatus(data.status))
