"""``/clients``: client list, key management and trust management (admins)."""

from __future__ import annotations

from typing import Any

from newage.domain.identity.presence import SocketRef
from newage.domain.identity.principal import require_admin, require_sensitive
from newage.errors import bad_request
from newage.protocol.acks import (
    OK,
    AllKeys,
    ClientListAck,
    Disconnected,
    Identities,
    IdentityReleased,
    KeyCreated,
    KeyInfo,
    TrustAdded,
    TrustedClients,
)
from newage.protocol.models import (
    ClientIdIn,
    DisconnectClientIn,
    IdentityIn,
    OptionalClientIdIn,
    TargetClientIn,
    TrustIn,
)
from newage.protocol.names import ClientKind, Ev
from newage.realtime.base import BaseNamespace, on


class ClientsNamespace(BaseNamespace):
    def _sensitive(self, ref: SocketRef, *, allow_extension: bool = True) -> None:
        require_sensitive(
            ref.principal, self.services.live.current.network_safe, allow_extension=allow_extension
        )

    # ------------------------------------------------------------------ client list
    @on(Ev.GET_CLIENT_LIST, "getClientList")
    async def get_client_list(self, ref: SocketRef, _: Any) -> ClientListAck:
        return {**OK, **self.services.sessions.client_list()}

    @on(Ev.UPDATE_CONNECTED_CLIENTS)
    async def update_connected_clients(self, ref: SocketRef, _: Any) -> ClientListAck:
        return {**OK, **self.services.sessions.client_list()}

    @on(Ev.GET_ROOMS, "getRooms")
    async def get_rooms(self, ref: SocketRef, _: Any) -> list[str]:
        # the extension's "rooms" socket is connected here and iterates the
        # reply directly, so this namespace answers with a bare array
        return self.services.rooms.visible_names(ref.principal)

    # ------------------------------------------------------------------ keys
    def _key_target(self, ref: SocketRef, target: str) -> None:
        """Key management: admins for anyone, an extension for its own
        clientId only (its settings page shows and renews its key)."""
        if ref.principal.is_extension and target == ref.principal.client_id:
            self._sensitive(ref)
            return
        require_admin(ref.principal, self.services.live.current.network_safe)

    @on(Ev.GET_ALL_CLIENT_KEYS)
    async def get_all_keys(self, ref: SocketRef, _: Any) -> AllKeys:
        p = ref.principal
        if p.is_extension:
            self._sensitive(ref)  # the extension asks at login: it gets its own
            records = [r for r in await self.services.keys.list() if r.client_id == p.client_id]
        else:
            require_admin(p, self.services.live.current.network_safe)
            records = await self.services.keys.list()
        keys: dict[str, dict[str, Any]] = {}
        for record in records:  # oldest first: the newest wins, all are listed
            item = keys.setdefault(record.client_id, {"keys": []})
            item["keys"].append(record.public())
            item.update(record.public())
        return {**OK, "keys": keys}

    @on(Ev.GET_CLIENT_KEY, model=OptionalClientIdIn)
    async def get_client_key(self, ref: SocketRef, data: OptionalClientIdIn) -> KeyInfo:
        return await self.services.keys.info(
            ref.principal,
            data.client_id,
            self.services.live.current.network_safe,
            legacy_denial=False,
        )

    @on(Ev.GENERATE_CLIENT_KEY, model=TargetClientIn)
    async def generate_key(self, ref: SocketRef, data: TargetClientIn) -> KeyCreated:
        target = data.target_client_id
        self._key_target(ref, target)
        if ref.principal.is_admin:
            key, record = await self.services.keys.create(target)
        else:  # its own: one more key, the ones its other tabs use stay valid
            self.services.auth.issuing(ref.principal.peer)  # bcrypt: same limits as getKey
            settings = self.services.live.current
            key, record = await self.services.keys.issue(
                target, settings.max_keys_per_client, settings.key_expiry_days
            )
        entry = await self.services.trust.get(target)
        return {
            **OK,
            "clientId": record.client_id,
            "key": key,
            "fingerprint": record.fingerprint,
            "createdAt": record.created_at,
            "trusted": bool(entry and entry.trusted),
        }

    @on(Ev.REMOVE_CLIENT_KEY, model=TargetClientIn)
    async def remove_key(self, ref: SocketRef, data: TargetClientIn) -> Disconnected:
        target = data.target_client_id
        self._key_target(ref, target)
        existed = await self.services.keys.revoke(target, data.fingerprint)
        dropped = await self.services.guard.enforce([target])
        reply: Disconnected = {**OK, "disconnected": dropped}
        if not existed:
            reply["message"] = f"No key for {target}."
        return reply

    # ------------------------------------------------------------------ trust (admins)
    @on(Ev.GET_TRUSTED_CLIENTS)
    async def get_trusted(self, ref: SocketRef, _: Any) -> TrustedClients:
        require_admin(ref.principal, self.services.live.current.network_safe)
        entries = [entry.public() for entry in await self.services.trust.list()]
        return {**OK, "clients": entries}

    @on(Ev.ADD_TRUSTED_CLIENT, model=TrustIn)
    async def add_trusted(self, ref: SocketRef, data: TrustIn) -> TrustAdded:
        require_admin(ref.principal, self.services.live.current.network_safe)
        try:
            kind = ClientKind(data.client_type)
        except ValueError:
            raise bad_request("clientType must be client, SillyTavern or monitor.") from None
        entry = await self.services.trust.add(data.client_id, kind, data.password, data.remember_me)
        # a changed type (a demoted admin) must not keep its old rights on open
        # sockets, and another client's sockets may not keep this name as identity
        users = {
            r.principal.client_id for r in self.services.presence.identity_sids(entry.client_id)
        }
        dropped = await self.services.guard.enforce({entry.client_id, *users})
        return {**OK, "client": entry.public(), "disconnected": dropped}

    @on(Ev.REMOVE_TRUSTED_CLIENT, model=ClientIdIn)
    async def remove_trusted(self, ref: SocketRef, data: ClientIdIn) -> Disconnected:
        require_admin(ref.principal, self.services.live.current.network_safe)
        removed = await self.services.trust.remove(data.client_id)
        dropped = await self.services.guard.enforce([data.client_id])
        reply: Disconnected = {**OK, "disconnected": dropped}
        if not removed:
            reply["message"] = f"{data.client_id} was not trusted."
        return reply

    # ------------------------------------------------------------------ identities (admins)
    @on(Ev.GET_IDENTITIES)
    async def get_identities(self, ref: SocketRef, _: Any) -> Identities:
        require_admin(ref.principal, self.services.live.current.network_safe)
        items = await self.services.auth.identities.list()
        for item in items:
            item["online"] = self.services.presence.is_present(item["identity"])
        return {**OK, "identities": items}

    @on(Ev.RELEASE_IDENTITY, model=IdentityIn)
    async def release_identity(self, ref: SocketRef, data: IdentityIn) -> IdentityReleased:
        require_admin(ref.principal, self.services.live.current.network_safe)
        await self.services.auth.identities.release(data.identity)
        # its sockets go too: the next clientId to connect with it owns it
        dropped = await self.services.guard.disconnect_identity(data.identity)
        return {**OK, "identity": data.identity, "disconnected": dropped}

    @on(Ev.DISCONNECT_CLIENT, model=DisconnectClientIn)
    async def disconnect_client(self, ref: SocketRef, data: DisconnectClientIn) -> Disconnected:
        require_admin(ref.principal, self.services.live.current.network_safe)
        if data.identity:
            dropped = await self.services.guard.disconnect_identity(data.identity)
        elif data.client_id:
            dropped = await self.services.guard.disconnect_client(data.client_id)
        else:
            raise bad_request("identity or clientId is required.")
        return {**OK, "disconnected": dropped}
