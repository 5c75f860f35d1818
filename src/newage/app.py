"""Wiring: one :class:`App` holds the services of a running server.

Construction is cheap and side-effect free; :meth:`App.startup` opens the
store, imports the trust files, loads persisted state and starts the
background loops; :meth:`App.shutdown` undoes it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import socketio

from newage import __version__
from newage.cluster.admin import RemoteAdmin
from newage.cluster.answers import ApiAnswers
from newage.cluster.node import ClusterNode
from newage.cluster.outbox import ClusterOutbox
from newage.cluster.recovery import NodeRecovery
from newage.cluster.requests import RemoteRequests
from newage.cluster.views import ClusterWiring
from newage.datadir import DataDir
from newage.domain.functions.builtins import (
    BOOTSTRAP_FUNCTIONS,
    StaticResources,
    register_file_functions,
)
from newage.domain.functions.files import FileArea
from newage.domain.functions.service import (
    FunctionRegistry,
    FunctionService,
    LegacySettingsFiles,
    decorated_functions,
    load_entry_point_functions,
)
from newage.domain.functions.static import StaticMappings
from newage.domain.identity.auth import Authenticator
from newage.domain.identity.credentials import Credentials
from newage.domain.identity.guard import AccessGuard
from newage.domain.identity.presence import Presence
from newage.domain.identity.sessions import SessionService
from newage.domain.identity.trust import KeyService, TrustService
from newage.domain.llm.api import LlmApi
from newage.domain.llm.chat import ChatService
from newage.domain.llm.liveness import Liveness
from newage.domain.llm.queue import ExtensionQueues
from newage.domain.llm.recovery import PARTIAL_SAVE_INTERVAL, SHUTDOWN_REASON, OpenAnswers
from newage.domain.llm.requests import RequestTracker
from newage.domain.llm.responses import Responder
from newage.domain.llm.resume import Resumer
from newage.domain.llm.room_events import RoomEvents
from newage.domain.llm.routing import Router
from newage.domain.llm.streamlog import MemoryStreamLog
from newage.domain.llm.streams import StreamService
from newage.domain.llm.thinking import Thinker
from newage.domain.ops.audit import Audit
from newage.domain.ops.debug import DebugService
from newage.domain.ops.request_log import RequestLog
from newage.domain.ops.series import Series
from newage.domain.ops.server_info import ServerInfo
from newage.domain.rooms.audience import Audience
from newage.domain.rooms.history import History
from newage.domain.rooms.messages import MessageService
from newage.domain.rooms.mutes import MuteService
from newage.domain.rooms.relations import RelationService
from newage.domain.rooms.service import RoomService
from newage.domain.rooms.status import StatusBoard
from newage.http.app import AsgiRouter, build_http_app
from newage.http.origins import OriginGuard, OriginPolicy
from newage.logs import log
from newage.metrics import Metrics
from newage.protocol.names import Namespace
from newage.realtime.auth import AuthNamespace
from newage.realtime.base import BaseNamespace
from newage.realtime.clients import ClientsNamespace
from newage.realtime.debug import DebugNamespace
from newage.realtime.default import DefaultNamespace
from newage.realtime.fast_stream import FastStreamPath
from newage.realtime.function_call import FunctionCallNamespace
from newage.realtime.llm import LlmNamespace
from newage.realtime.outbox import SocketOutbox
from newage.realtime.rooms import RoomsNamespace
from newage.realtime.server import NewAgeServer
from newage.realtime.sillytavern import SillyTavernNamespace
from newage.services import Services
from newage.settings import LiveSettings, Settings
from newage.store.factory import describe_store, make_store
from newage.store.trustfiles import TrustDirectory

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
        self.live = LiveSettings(settings, settings_path or data.server_settings)
        self.metrics = Metrics()
        self.store = make_store(settings, data.db_path)
        self.audit = Audit(self.store, self.live)
        self.live.on_change(self.audit.settings_changed)
        self.credentials = Credentials(self.store)
        self.trust = TrustService(
            self.store, TrustDirectory(data.settings_dir), settings.bcrypt_cost, self.credentials
        )
        self.keys = KeyService(self.store, settings.bcrypt_cost, self.credentials)
        self.auth = Authenticator(self.store, self.credentials, lambda: self.live.current)
        self.presence = Presence()

        self.origins = OriginPolicy(lambda: self.live.current)
        self.sio = NewAgeServer(lambda: self.live.current, self.origins.for_engineio)
        local = SocketOutbox(self.sio, self.presence, self.metrics)
        self.outbox: SocketOutbox | ClusterOutbox = local
        self.cluster: ClusterNode | None = None
        if settings.redis_url:  # several processes as one (docs/cluster.md)
            self.cluster = ClusterNode(
                settings.redis_url,
                settings.redis_prefix,
                local.addresses,
                self.presence.client_items,
                lambda: self.live.current.outbound_max_bytes,
            )
            self.outbox = ClusterOutbox(local, self.cluster)
            self.presence.on_change = self.cluster.mark_dirty
        self.guard = AccessGuard(self.store, self.presence, self.outbox)
        self.relations = RelationService(self.store, self.outbox, self.presence)
        self.audience = Audience(lambda: self.live.current, self.relations)
        self.history = History(self.store, self.outbox, self.audience.of)
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
        self.sessions = SessionService(
            self.presence, self.rooms, self.relations, self.outbox, self._enter
        )
        self.sessions.session_ended.append(self.status_board.idle_everywhere)
        if self.cluster is not None:
            self.sessions.elsewhere = self.cluster.other_clients
            self.cluster.on_clients_changed.append(self.sessions.schedule_broadcast)

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
            self.audience.watchers,
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
            self.store, self.outbox, self.rooms, self.live, self.audience.of, self.history
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
        if self.cluster is not None:
            self.remote_requests = RemoteRequests(
                self.cluster, self.chat, self.tracker, self.outbox, self.resumer
            )
            self.remote_admin = RemoteAdmin(self.cluster, self.guard, self.liveness)
            self.api_answers = ApiAnswers(self.cluster, self.remote_requests, self.llm_api)
            self.node_recovery = NodeRecovery(self.cluster, self.answers)
        self.responder.on_settled = self.answers.settled
        self.mutes.on_unmuted.append(self.thinker.unmuted)
        self.room_events = RoomEvents(
            lambda: self.live.current,
            self.store,
            self.history,
            self.messages,
            self.thinker,
            self.chat,
            self.status_board,
            self.mutes,
            self.relations,
        )
        self.rooms.on_deleted.append(self.room_events.deleted)
        if self.cluster is not None:
            # each reloads only what another node changed
            self.rooms.on_changed = self.cluster.changed("rooms")
            self.mutes.on_changed = self.cluster.changed("mutes")
            self.relations.on_changed = self.cluster.changed("policy")
            self.cluster.on_changed.update(
                rooms=self.rooms.resync, mutes=self.mutes.load, policy=self.relations.reload
            )
        self.rooms.on_mode_changed.append(self.room_events.mode_changed)
        self.history.after_record.append(self.room_events.recorded)

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
        self.info = ServerInfo(self.presence, self.rooms, self.tracker, self.streams)
        self.info.cluster = self.cluster.status if self.cluster is not None else None
        self.debug = DebugService(self.live, data.logs_dir, self.info.status, self.outbox)
        self.services = Services(
            live=self.live,
            metrics=self.metrics,
            info=self.info,
            audit=self.audit,
            auth=self.auth,
            trust=self.trust,
            keys=self.keys,
            presence=self.presence,
            guard=self.guard,
            sessions=self.sessions,
            rooms=self.rooms,
            relations=self.relations,
            mutes=self.mutes,
            status_board=self.status_board,
            messages=self.messages,
            chat=self.chat,
            router=self.router,
            tracker=self.tracker,
            streams=self.streams,
            responder=self.responder,
            queues=self.queues,
            resumer=self.resumer,
            liveness=self.liveness,
            llm_api=self.llm_api,
            functions=self.functions,
            static_mappings=self.static_mappings,
            debug=self.debug,
            request_log=self.request_log,
            series=self.series,
            startup=self.startup,
            shutdown=self.shutdown,
            ready=self.ready,
            refresh_gauges=self.refresh_gauges,
        )
        # settings, function calls and monitor views across nodes (cluster/views.py)
        self.wiring = ClusterWiring.of(self.outbox, self.services)

        for namespace, cls in NAMESPACES.items():
            self.sio.register_namespace(cls(namespace.value, self.services))
        llm = self.sio.ns(Namespace.LLM)
        assert isinstance(llm, LlmNamespace)
        self.fast = llm.fast = FastStreamPath(llm, self.services, self.sio)
        self.http = build_http_app(self.services)
        sio_path = settings.socket_io_path
        self.asgi = OriginGuard(
            AsgiRouter(
                socketio.ASGIApp(self.sio, socketio_path=sio_path.lstrip("/")), self.http, sio_path
            ),
            self.origins,
            on_refused=self.audit.origin_refused,
        )
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def settings(self) -> Settings:
        return self.live.current

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

    def _observe_request(self, status: str, seconds: float) -> None:
        self.metrics.request_seconds.labels(status).observe(seconds)

    async def _enter(self, sid: str, namespace: str, address: str) -> None:
        await self.sio.enter_room(sid, address, namespace=namespace)
        if self.cluster is not None:
            self.cluster.mark_dirty()

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
        if self.cluster is None:
            await self.answers.recover()
        else:  # only the answers of nodes not alive: the others' are live
            await self.node_recovery.startup()
            await self.cluster.start()
        if self.wiring is not None:
            await self.wiring.start()
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
            "newage %s ready on %s:%s (data %s, store %s, networkSafe %s, %d trusted clients)",
            __version__,
            settings.host,
            settings.server_port,
            self.data.root,
            describe_store(settings, self.data.db_path),
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
        if self.cluster is not None:
            await self.cluster.stop()
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
        self.fast.flush_metrics()
        self.metrics.sessions.set(len(self.presence.sessions))
        self.metrics.active_streams.set(self.streams.active)
        self.metrics.requests_in_flight.set(self.tracker.open_count())

    async def ready(self) -> dict[str, bool]:
        """What /readyz reports: each backing service answers."""
        checks = {"store": await self.store.ping()}
        if self.cluster is not None:
            checks["redis"] = await self.cluster.ping()
        return checks
