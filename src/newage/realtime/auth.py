"""``/auth``: key issuance for SillyTavern clients, key metadata, extensions."""

from __future__ import annotations

from typing import Any

from newage.domain.identity.auth import AuthResult
from newage.domain.identity.presence import SocketRef
from newage.domain.identity.principal import ConnMode
from newage.errors import NewAgeError, bad_request, unavailable
from newage.logs import log
from newage.protocol.acks import OK, Extensions, KeyInfo, KeyIssued
from newage.protocol.models import LoginIn, OptionalClientIdIn
from newage.protocol.names import Ev
from newage.protocol.outbound import KeyAssigned
from newage.realtime.base import BaseNamespace, on


class AuthNamespace(BaseNamespace):
    async def accepted(self, ref: SocketRef, result: AuthResult) -> None:
        if result.mode is ConnMode.KEY_PENDING:
            if result.may_issue:
                try:
                    await self._issue(ref, None, satisfied=True)
                except NewAgeError as exc:
                    ack = exc.to_ack()
                    failed: KeyAssigned = {
                        "success": False,
                        "status": "error",
                        "message": ack["message"],
                        "code": ack["code"],
                    }
                    await self.emit(Ev.CLIENT_KEY_ASSIGNED, failed, to=ref.sid)
            else:
                # a password is configured: the client must send LOGIN
                pending: KeyAssigned = {
                    "success": False,
                    "status": "pending",
                    "message": "Password required: send LOGIN.",
                }
                await self.emit(Ev.CLIENT_KEY_ASSIGNED, pending, to=ref.sid)

    async def _issue(self, ref: SocketRef, password: Any, *, satisfied: bool) -> KeyIssued:
        key, record = await self.services.auth.issue_key(
            ref.principal, self.services.keys, password, satisfied=satisfied
        )
        payload: KeyIssued = {
            **OK,
            "clientId": ref.principal.client_id,
            "key": key,
            "Key": key,
            "fingerprint": record.fingerprint,
        }
        await self.emit(Ev.CLIENT_KEY_ASSIGNED, payload, to=ref.sid)
        log.info("issued a key to %s on /auth", ref.principal.client_id)
        return payload

    @on(Ev.LOGIN, model=LoginIn, modes=(ConnMode.FULL, ConnMode.KEY_PENDING))
    async def login(self, ref: SocketRef, data: LoginIn) -> KeyIssued:
        if data.client_id is not None and data.client_id != ref.principal.client_id:
            raise bad_request("clientId mismatch.")
        return await self._issue(ref, data.password, satisfied=False)

    @on(Ev.GET_CLIENT_KEY, model=OptionalClientIdIn)
    async def get_client_key(self, ref: SocketRef, data: OptionalClientIdIn) -> KeyInfo:
        return await self.services.keys.info(
            ref.principal,
            data.client_id,
            self.services.live.current.network_safe,
            legacy_denial=True,
        )

    @on(Ev.GET_SILLYTAVERN_EXTENSION)
    async def get_extensions(self, ref: SocketRef, _: Any) -> Extensions:
        extensions = self.services.relations.visible_to(ref.principal)
        if not extensions:
            # the original's empty lists ride along for clients that read them
            raise unavailable(
                "No connected SillyTavern extensions.", extensions=[], allTheSTSocket=[]
            )
        return {**OK, "extensions": extensions, "allTheSTSocket": extensions}
