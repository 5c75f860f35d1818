"""``/function_call``: server functions and calls forwarded to other clients."""

from __future__ import annotations

from typing import Any, cast

from newage.domain.functions.service import CallContext, function_error
from newage.domain.identity.presence import SocketRef
from newage.domain.identity.principal import ConnMode
from newage.errors import unauthenticated
from newage.protocol.acks import FunctionAck, function_ok
from newage.protocol.models import FunctionCallIn
from newage.protocol.names import SERVER_TARGET, Ev
from newage.protocol.outbound import ForwardedCall
from newage.realtime.base import BaseNamespace, on


def _forwarded(args: list[Any]) -> bool:
    # a forwarded call waits for another client: run it beside this
    # connection's other events instead of in arrival order
    data = args[0] if args else None
    return isinstance(data, dict) and data.get("target", SERVER_TARGET) not in (
        None,
        SERVER_TARGET,
    )


class FunctionCallNamespace(BaseNamespace):
    async def closed(self, ref: SocketRef) -> None:
        self.services.functions.socket_gone(ref.sid)
        await super().closed(ref)

    @on(
        Ev.FUNCTION_CALL,
        model=FunctionCallIn,
        modes=(ConnMode.FULL, ConnMode.BOOTSTRAP),
        detached=_forwarded,
        error_shape=function_error,
    )
    async def function_call(self, ref: SocketRef, data: FunctionCallIn) -> FunctionAck:
        if data.target in (None, SERVER_TARGET):
            ctx = CallContext(ref.principal, ref.mode)
            result = await self.services.functions.call_server(ctx, data.function_name, data.args)
            return function_ok(data.request_id, result)
        if ref.mode is not ConnMode.FULL:
            raise unauthenticated("Key required.")
        # the caller's payload as it came (extra fields included); its
        # clientId/source are the caller's claims, ``caller`` is ours
        payload = cast(ForwardedCall, data.model_dump(by_alias=True, exclude_unset=True))
        p = ref.principal
        payload["caller"] = {
            "clientId": p.client_id,
            "identity": p.identity,
            "kind": p.kind.value,
        }
        return await self.services.functions.forward(payload, data.target, p.client_id)
