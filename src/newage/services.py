"""What the namespaces and the HTTP routes may use: the domain's services.

``app.py`` builds them and hands this object to every handler, so a handler
sees the services by name and type, and nothing of the wiring (the socket
server, the store, the background loops). Tests and tools that need more
reach the wiring through ``App``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from newage.domain.functions.service import FunctionService
from newage.domain.functions.static import StaticMappings
from newage.domain.identity.auth import Authenticator
from newage.domain.identity.guard import AccessGuard
from newage.domain.identity.presence import Presence
from newage.domain.identity.sessions import SessionService
from newage.domain.identity.trust import KeyService, TrustService
from newage.domain.llm.api import LlmApi
from newage.domain.llm.chat import ChatService
from newage.domain.llm.liveness import Liveness
from newage.domain.llm.queue import ExtensionQueues
from newage.domain.llm.requests import RequestTracker
from newage.domain.llm.responses import Responder
from newage.domain.llm.resume import Resumer
from newage.domain.llm.routing import Router
from newage.domain.llm.streams import StreamService
from newage.domain.ops.audit import Audit
from newage.domain.ops.debug import DebugService
from newage.domain.ops.request_log import RequestLog
from newage.domain.ops.series import Series
from newage.domain.ops.server_info import ServerInfo
from newage.domain.rooms.messages import MessageService
from newage.domain.rooms.mutes import MuteService
from newage.domain.rooms.relations import RelationService
from newage.domain.rooms.service import RoomService
from newage.domain.rooms.status import StatusBoard
from newage.metrics import Metrics
from newage.settings import LiveSettings


@dataclass(frozen=True, slots=True)
class Services:
    live: LiveSettings
    metrics: Metrics
    info: ServerInfo
    audit: Audit
    # identity
    auth: Authenticator
    trust: TrustService
    keys: KeyService
    presence: Presence
    guard: AccessGuard
    sessions: SessionService
    # rooms
    rooms: RoomService
    relations: RelationService
    mutes: MuteService
    status_board: StatusBoard
    messages: MessageService
    # llm
    chat: ChatService
    router: Router
    tracker: RequestTracker
    streams: StreamService
    responder: Responder
    queues: ExtensionQueues
    resumer: Resumer
    liveness: Liveness
    llm_api: LlmApi
    # functions and ops
    functions: FunctionService
    static_mappings: StaticMappings
    debug: DebugService
    request_log: RequestLog
    series: Series
    # the process around them (HTTP lifespan, /readyz, /metrics)
    startup: Callable[[], Awaitable[None]]
    shutdown: Callable[[], Awaitable[None]]
    ready: Callable[[], Awaitable[dict[str, bool]]]
    refresh_gauges: Callable[[], None]
