"""Wiring: one :class:`App` holds the services of a running server.

Construction is cheap and side-effect free; :meth:`App.startup` opens the
store, imports the trust files, loads persisted state and starts the
background loops; :meth:`App.shutdown` undoes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import socketio

from newage import __version__
from newage.datadir import DataDir
from newage.domain.audit import Audit
from newage.domain.auth import Authenticator
from newage.domain.builtin_functions import (
    BOOTSTRAP_FUNCTIONS,
    StaticResources,
    register_file_functions,
)
from newage.domain.chat import ChatService
from newage.domain.credentials import Credentials
from newage.domain.debug import DebugService
from newage.domain.files import FileArea
from newage.domain.functions import (
    FunctionRegistry,
    FunctionService,
    LegacySettingsFiles,
    decorated_functions,
    load_entry_point_functions,
)
from newage.domain.guard import AccessGuard
from newage.domain.history import History
from newage.domain.liveness import Liveness
from newage.domain.llm_api import LlmApi
from newage.domain.messages import MessageService
from newage.domain.mutes import MuteService
from newage.domain.ports import identity_addr, room_addr
from newage.domain.presence import Presence
from newage.domain.queue import ExtensionQueues
from newage.domain.recovery import PARTIAL_SAVE_INTERVAL, SHUTDOWN_REASON, OpenAnswers
from newage.domain.relations import RelationService
from newage.domain.request_log import RequestLog
from newage.domain.requests import RequestTracker
from newage.domain.responses import Responder
from newage.domain.resume import Resumer
from newage.domain.room_model import Room
from newage.domain.rooms import RoomService
from newage.domain.routing import Router
from newage.domain.series import Series
from newage.domain.sessions import SessionService
from newage.domain.staticmap import StaticMappings
from newage.domain.status import StatusBoard
from newage.domain.streamlog import MemoryStreamLog
from newage.domain.streams import StreamService
from newage.domain.thinking import Thinker
from newage.domain.trust import KeyService, TrustService
from newage.http.app import AsgiRouter, build_http_app
from newage.http.origins import OriginGuard, OriginPolicy
from newage.logs import log
from newage.metrics import Metrics
from newage.protocol.names import MONITOR_ROOM, Namespace, RequestMode
from newage.realtime.auth import AuthNamespace
from newage.realtime.base import BaseNamespace
from newage.realtime.clients import ClientsNamespace
from newage.realtime.debug import DebugNamespace
from newage.realtime.default import DefaultNamespace
from newage.realtime.function_call import FunctionCallNamespace
from newage.realtime.llm import LlmNamespace
from newage.realtime.outbox import SocketOutbox
from newage.realtime.rooms import RoomsNamespace
from newage.realtime.server import NewAgeServer
from newage.realtime.sillytavern import SillyTavernNamespace
from newage.settings import LiveSettings, Settings
from newage.store.sqlite import SQLiteStore

NAMESPACES: dict[Namespace, type[BaseNamespace]] = {
    Namespace.DEFAULT: DefaultNamespace,
    Namespace.AUTH: AuthNamespace,
    Namespace.LLM: LlmNamespace,
    Namespace.FUNCTION_CALL: FunctionCallNamespace,
    Namespace.ROOMS: RoomsNamespace,
    Namespace.CLIENTS: ClientsNamespace,
    Namespace.SILLYTAVERN: SillyTavernNamespace,
    Namespace.DEBUG: DebugNamespace,
}
WATCH_INTERVAL = 0.1  # how soon CLI edits by another process take effect
SWEEP_INTERVAL = 1.0
AUDIT_FLUSH_INTERVAL = 1.0
AUDIT_PRUNE_INTERVAL = 3600.0
CLEANUP_INTERVAL = 3600.0


class App:
    def __init__(
        self, data: DataDir, settings: Settings, settings_path: Path | None = None
    ) -> None:
        self.data = data
        self.version = __version__
        self.started_at = time.time()
        self.live = LiveSettings(settings, settings_path or data.server_settings)
        self.metrics = Metrics()
        self.store = SQLiteStore(data.db_path, synchronous=settings.sqlite_synchronous)
        self.audit = Audit(self.store, self.live)
        self.live.on_change(self._settings_changed)
        self.credentials = Credentials(self.store)
        self.trust = TrustService(
            self.store, data.settings_dir, settings.bcrypt_cost, self.credentials
        )
        self.keys = KeyService(self.store, settings.bcrypt_cost, self.credentials)
        self.auth = Authenticator(self.store, self.credentials, lambda: self.live.current)
        self.presence = Presence()

        self.origins = OriginPolicy(lambda: self.live.current)
        self.sio = NewAgeServer(lambda: self.live.current, self.origins.for_engineio)
        self.outbox = SocketOutbox(self.sio, self.presence, self.metrics)
        self.guard = AccessGuard(self.store, self.presence, self.outbox)
        self.relations = RelationService(self.store, self.outbox, self.presence)
        self.history = History(self.store, self.outbox, self.audience)
        self.rooms = RoomService(
            self.store,
            self.outbox,
            self.presence,
            self.history,
            self.live,
            reserved_names=self.presence.known_names,
        )
        self.status_board = StatusBoard(self.outbox)
        self.mutes = MuteService(
            self.store, self.outbox, self.rooms, self.history, self.status_board
        )
        self.rooms.on_member_status = self.status_board.set
        self.rooms.on_deleted.append(self._room_deleted)
        self.sessions = SessionService(
            self.presence, self.rooms, self.relations, self.outbox, self._enter
        )
        self.sessions.session_ended.append(self.status_board.idle_everywhere)

        # LLM requests, streaming, history
        self.tracker = RequestTracker()
        self.request_log = RequestLog(self.outbox, self.live, self.audit)
        self.tracker.log = self.request_log
        self.series = Series(
            self.request_log,
            self.live,
            lambda: sum(self.presence.count_by_namespace().values()),
            self.tracker.open_count,
        )
        self.router = Router(self.presence, self.relations, self.tracker, self.outbox)
        self.responder = Responder(
            self.outbox,
            self.tracker,
            self.history,
            self.status_board,
            self.watchers,
            self._observe_request,
        )
        self.stream_log = MemoryStreamLog(*self._stream_log_bounds(settings))
        self.live.on_change(
            lambda _old, new: self.stream_log.configure(*self._stream_log_bounds(new))
        )
        self.streams = StreamService(self.tracker, self.responder, self.live, self.stream_log)
        self.queues = ExtensionQueues(
            self.tracker,
            self.router,
            self.presence,
            self.responder,
            self.status_board,
            self.history,
            self.live,
        )
        self.liveness = Liveness(
            self.router,
            self.presence,
            self.tracker,
            self.queues,
            self.responder,
            self.outbox,
            self.live,
        )
        self.resumer = Resumer(self.stream_log, self.streams, self.tracker, self.rooms, self.outbox)
        self.chat = ChatService(
            self.store,
            self.outbox,
            self.rooms,
            self.mutes,
            self.history,
            self.router,
            self.tracker,
            self.status_board,
            self.live,
            self.streams,
            self.queues,
        )
        self.messages = MessageService(
            self.store, self.outbox, self.rooms, self.live, self.audience, self.history
        )
        self.thinker = Thinker(
            self.rooms, self.mutes, self.presence, self.router, self.tracker, self.chat, self.live
        )
        # what waits in its queue fails first, or freed slots would pull it in
        self.sessions.extension_gone.append(self.queues.extension_gone)
        self.sessions.extension_gone.append(self.streams.extension_gone)
        self.sessions.instance_gone.append(self.streams.instance_gone)
        self.llm_api = LlmApi(
            self.auth,
            self.chat,
            self.rooms,
            self.router,
            self.relations,
            self.responder,
            self.resumer,
        )
        self.answers = OpenAnswers(
            self.store,
            self.tracker,
            self.streams,
            self.responder,
            self.history,
            lambda room: room in self.rooms.rooms,
        )
        self.chat.on_forward = self.answers.opened
        self.responder.on_settled = self.answers.settled
        self.mutes.on_unmuted.append(self.thinker.unmuted)
        self.rooms.on_mode_changed.append(self._mode_changed)
        self.history.after_record.append(self._legacy_context)

        self.files = FileArea(data.files_dir, lambda: self.live.current.restricted_files)
        self.static_mappings = StaticMappings(data.files_dir)
        self.registry = FunctionRegistry()
        register_file_functions(
            self.registry,
            self.files,
            LegacySettingsFiles(self.store, self.live),
            self.live,
            StaticResources(self.store, self.static_mappings, self.files),
        )
        self.functions = FunctionService(
            self.registry, self.presence, self.outbox, self.live, BOOTSTRAP_FUNCTIONS
        )
        self.debug = DebugService(self.live, data.logs_dir, self.status, self.outbox)

        for namespace, cls in NAMESPACES.items():
            self.sio.register_namespace(cls(namespace.value, self))
        self.http = build_http_app(self)
        sio_path = settings.socket_io_path
        self.asgi = OriginGuard(
            AsgiRouter(
                socketio.ASGIApp(self.sio, socketio_path=sio_path.lstrip("/")), self.http, sio_path
            ),
            self.origins,
            on_refused=self._origin_refused,
        )
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def settings(self) -> Settings:
        return self.live.current

    # ------------------------------------------------------------------ addressing
    def audience(self, room: str) -> list[str]:
        """Who hears about a room's messages: its members, the extensions
        assigned to it, and (when mirroring) the monitors."""
        return self.watchers(room) + [identity_addr(e) for e in self.relations.for_room(room)]

    def watchers(self, room: str) -> list[str]:
        """Who sees a room's live answers (streams, LLM_RESPONSE): members
        and monitors. Assigned extensions are not addressed here at all:
        under Free that is every extension, and looking each one up for
        every chunk made a relayed token cost O(extensions)."""
        if self.live.current.mirror_to_monitors and room != MONITOR_ROOM:
            return [room_addr(room), room_addr(MONITOR_ROOM)]
        return [room_addr(room)]

    async def _room_deleted(self, room: Room) -> None:
        self.history.forget(room.name)
        await self.thinker.forget_room(room)
        self.status_board.forget_room(room.name)
        await self.mutes.forget_room(room.name)
        self.relations.forget_client_room(room.name)

    async def _mode_changed(self, room: Room, previous: RequestMode) -> None:
        await self.thinker.mode_changed(room, previous)
        if previous is RequestMode.HOST_SUBMIT:
            await self.chat.forget_room(room.name)  # the guest queue goes with the mode

    async def _legacy_context(self, room: str, kind: str) -> None:
        """Opt-in original behaviour: the whole paged context to every member
        after every request and response (newest paging wins per room)."""
        if self.live.current.legacy_context_broadcast and kind != "system":
            total = await self.store.count_messages(room)
            self.messages.page_to(room_addr(room), room, str(uuid.uuid4()), total)

    @staticmethod
    def _stream_log_bounds(settings: Settings) -> tuple[int, int, float]:
        return (
            settings.stream_log_max_bytes,
            settings.stream_log_total_bytes,
            settings.stream_log_retention_ms / 1000,
        )

    async def _check_stalls(self) -> None:
        self.liveness.check_stalls()

    async def _cleanup_personal_rooms(self) -> None:
        days = self.live.current.personal_room_cleanup_days
        if days:
            for name in await self.rooms.cleanup_personal(days):
                self.audit.add("room.cleanup", name, days=days)

    def _origin_refused(self, origin: str, peer: str) -> None:
        self.audit.add("origin.refused", repr(origin), actor=peer or "unknown peer", level="warn")

    def _settings_changed(self, previous: Settings, current: Settings) -> None:
        before, after = previous.to_file_dict(), current.to_file_dict()
        changed = sorted(k for k in after if before.get(k) != after.get(k))
        if changed:
            values = {k: str(after[k])[:100] for k in changed}
            self.audit.add("settings.change", ", ".join(changed), values=values)

    def _observe_request(self, status: str, seconds: float) -> None:
        self.metrics.request_seconds.labels(status).observe(seconds)

    async def _enter(self, sid: str, namespace: str, address: str) -> None:
        await self.sio.enter_room(sid, address, namespace=namespace)

    # ------------------------------------------------------------------ lifecycle
    async def startup(self) -> None:
        self.data.ensure()
        await self.store.open()
        entries = await self.trust.import_files()
        await self.relations.load(self.live.current.connection_policy)
        await self.rooms.load()
        await self.mutes.load()
        for mapping in await self.store.list_static_mappings():
            self.static_mappings.set(mapping.url_path, mapping.target)
        load_entry_point_functions(self.registry)
        for fn in decorated_functions():
            if fn.name not in self.registry.functions:
                self.registry.register(fn)
        await self.answers.recover()
        await self.store.changed_elsewhere()  # prime the change counter
        self._every(lambda: PARTIAL_SAVE_INTERVAL, self.answers.save_partials, "partial answers")
        await self.audit.prune()
        self._every(lambda: AUDIT_FLUSH_INTERVAL, self.audit.flush, "audit flush")
        self._every(lambda: AUDIT_PRUNE_INTERVAL, self.audit.prune, "audit retention")
        self._every(self.series.interval, self.series.sample, "metrics sample")
        await self._cleanup_personal_rooms()
        self._every(lambda: CLEANUP_INTERVAL, self._cleanup_personal_rooms, "personal rooms")
        self._every(lambda: WATCH_INTERVAL, self._store_changed, "store watch")
        self._every(lambda: SWEEP_INTERVAL, self.mutes.expire, "mute expiry")
        # idle outputs and silent extensions, at a pace that suits the timeouts
        self._every(self.streams.sweep_interval, self.streams.sweep, "stream sweep")
        self._every(self.thinker.interval, self.thinker.tick, "conversational check")
        self._every(lambda: SWEEP_INTERVAL, self.queues.expire, "queue expiry")
        self._every(self.liveness.stall_interval, self._check_stalls, "stall check")
        self._every(self.liveness.heartbeat_interval, self.liveness.beat, "heartbeat")
        settings = self.live.current
        log.info(
            "newage %s ready on %s:%s (data %s, networkSafe %s, %d trusted clients)",
            self.version,
            settings.host,
            settings.server_port,
            self.data.root,
            settings.network_safe,
            sum(1 for e in entries if e.trusted),
        )
        if "*" in settings.cors_origins:
            log.warning(
                "corsOrigins contains '*': web pages from any origin may connect "
                "(and may use the key-less SillyTavern login from loopback)"
            )
        if not any(e.trusted and e.kind.value == "monitor" for e in entries):
            log.info(
                "no admin yet: `newage trust add admin --type monitor` then "
                "`newage keys create admin` gives a key for the monitor page"
            )

    async def closing(self) -> None:
        """SIGTERM, before connections close: requesters hear their requests fail."""
        # first what waits in the queues, or the freed slots would forward it
        await self.queues.close(SHUTDOWN_REASON)
        await self.answers.shut_down(self.outbox.drained)

    async def shutdown(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        with contextlib.suppress(Exception):
            await self.audit.flush()
        await self.store.close()

    def _every(
        self, interval: Callable[[], float], work: Callable[[], Awaitable[Any]], what: str
    ) -> None:
        """Run ``work`` after every ``interval()`` seconds until shutdown; a
        failure is logged and the next round still runs."""

        async def loop() -> None:
            while True:
                await asyncio.sleep(interval())
                try:
                    await work()
                except Exception:
                    log.exception("%s failed", what)

        self._tasks.append(asyncio.create_task(loop(), name=what))

    async def _store_changed(self) -> None:
        """Trust/key edits made by the CLI in another process."""
        if await self.store.changed_elsewhere():
            await self.credentials.refresh()
            await self.guard.enforce()

    def refresh_gauges(self) -> None:
        llm = self.sio.ns(Namespace.LLM)
        if isinstance(llm, LlmNamespace):
            llm.fast.flush_metrics()
        self.metrics.sessions.set(len(self.presence.sessions))
        self.metrics.active_streams.set(self.streams.active)
        self.metrics.requests_in_flight.set(self.tracker.open_count())

    def uptime(self) -> float:
        return round(time.time() - self.started_at, 3)

    def status(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "uptimeSeconds": self.uptime(),
            "connections": self.presence.count_by_namespace(),
            "sessions": len(self.presence.sessions),
            "rooms": len(self.rooms.rooms),
            "requestsInFlight": self.tracker.open_count(),
            "streamsInFlight": self.streams.active,
        }
