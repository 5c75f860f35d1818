"""``/auth``: key issuance for SillyTavern clients, key metadata, extensions."""

from __future__ import annotations

from typing import Any

from newage.domain.auth import AuthResult
from newage.domain.presence import SocketRef
from newage.domain.principal import ConnMode
from newage.errors import NewAgeError, bad_request, forbidden
from newage.logs import log
from newage.protocol.models import LoginIn, OptionalClientIdIn
from newage.protocol.names import Ev
from newage.realtime.base import BaseNamespace, on


class AuthNamespace(BaseNamespace):
    async def accepted(self, ref: SocketRef, result: AuthResult) -> None:
        if result.mode is ConnMode.KEY_PENDING:
            if result.may_issue:
                try:
                    await self._issue(ref)
                except NewAgeError as exc:
                    failed = {**exc.to_ack(), "success": False}
                    await self.emit(Ev.CLIENT_KEY_ASSIGNED, failed, to=ref.sid)
            else:
                # a password is configured: the client must send LOGIN
                await self.emit(
                    Ev.CLIENT_KEY_ASSIGNED,
                    {
                        "success": False,
                        "status": "pending",
                        "message": "Password required: send LOGIN.",
                    },
                    to=ref.sid,
                )

    async def _issue(self, ref: SocketRef) -> dict[str, Any]:
        self.app.auth.issuing(ref.principal.peer)
        settings = self.app.live.current
        key, record = await self.app.keys.issue(
            ref.principal.client_id, settings.max_keys_per_client, settings.key_expiry_days
        )
        payload = {
            "success": True,
            "status": "ok",
            "clientId": ref.principal.client_id,
            "key": key,
            "Key": key,
            "fingerprint": record.fingerprint,
        }
        await self.emit(Ev.CLIENT_KEY_ASSIGNED, payload, to=ref.sid)
        log.info("issued a key to %s on /auth", ref.principal.client_id)
        return payload

    @on(Ev.LOGIN, model=LoginIn, modes=(ConnMode.FULL, ConnMode.KEY_PENDING))
    async def login(self, ref: SocketRef, data: LoginIn) -> dict[str, Any]:
        p = ref.principal
        if data.client_id is not None and data.client_id != p.client_id:
            raise bad_request("clientId mismatch.")
        if not p.is_extension:
            raise forbidden("Only SillyTavern clients may log in with a password.")
        entry = await self.app.trust.get(p.client_id)
        if entry is None or not entry.trusted:
            raise forbidden("Client is not trusted.")
        if not await self.app.auth.check_password(entry, data.password, p.peer):
            raise bad_request("Password required.")
        return await self._issue(ref)

    @on(Ev.GET_CLIENT_KEY, model=OptionalClientIdIn)
    async def get_client_key(self, ref: SocketRef, data: OptionalClientIdIn) -> dict[str, Any]:
        return await self.app.keys.info(
            ref.principal, data.client_id, self.app.live.current.network_safe, legacy_denial=True
        )

    @on(Ev.GET_SILLYTAVERN_EXTENSION)
    async def get_extensions(self, ref: SocketRef, _: Any) -> dict[str, Any]:
        extensions = self.app.relations.visible_to(ref.principal)
        if not extensions:
            return {
                "status": "error",
                "success": False,
                "message": "No connected SillyTavern extensions.",
                "extensions": [],
                "allTheSTSocket": [],
            }
        return {
            "status": "ok",
            "success": True,
            "extensions": extensions,
            "allTheSTSocket": extensions,
        }
