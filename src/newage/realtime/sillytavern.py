"""``/sillytavern``: the extension's login (``IDENTIFY_SILLYTAVERN``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from newage.domain.identity.auth import AuthResult
from newage.domain.identity.presence import SocketRef
from newage.domain.identity.principal import ConnMode
from newage.errors import bad_request, forbidden
from newage.logs import log
from newage.protocol.acks import OK, Identified, IdentifiedAgain, Ok
from newage.protocol.models import IdentifyIn
from newage.protocol.names import Ev
from newage.realtime.base import BaseNamespace, on

if TYPE_CHECKING:
    from newage.services import Services


class SillyTavernNamespace(BaseNamespace):
    def __init__(self, namespace: str, services: Services) -> None:
        super().__init__(namespace, services)
        self.ready: dict[str, bool] = {}  # sid -> password rule already satisfied

    async def authorize(self, result: AuthResult) -> None:
        if not result.principal.is_extension:
            raise forbidden("Unauthorized")

    async def accepted(self, ref: SocketRef, result: AuthResult) -> None:
        self.ready[ref.sid] = result.mode is ConnMode.FULL or result.may_issue

    async def closed(self, ref: SocketRef) -> None:
        self.ready.pop(ref.sid, None)
        await super().closed(ref)

    @on(Ev.IDENTIFY_SILLYTAVERN, model=IdentifyIn, modes=(ConnMode.FULL, ConnMode.KEY_PENDING))
    async def identify(self, ref: SocketRef, data: IdentifyIn) -> Identified | IdentifiedAgain:
        p = ref.principal
        if data.client_id != p.client_id:
            raise bad_request("clientId mismatch.")
        already = self.services.presence.extension_online(p.identity)
        key, _ = await self.services.auth.issue_key(
            p, self.services.keys, data.password, satisfied=self.ready.get(ref.sid, False)
        )
        self.ready[ref.sid] = True
        log.info("issued a key to %s on /sillytavern", p.client_id)
        if already:
            # another tab (or the page before a reload) keeps its own key
            return {
                "status": "warning",
                "key": key,
                "message": "SillyTavern extension already connected; issued an additional key.",
            }
        return {**OK, "key": key}

    @on(Ev.CLIENT_SETTINGS)
    async def client_settings(self, ref: SocketRef, data: Any) -> Ok:
        log.debug("client settings from %s: %r", ref.principal.identity, data)
        return {**OK}
