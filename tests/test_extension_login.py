"""The real extension's login, driven by the official JS socket.io-client."""

from __future__ import annotations

import json

import pytest

from tests.helpers.actors import connect
from tests.helpers.node import run_node, start_node

pytestmark = pytest.mark.node


@pytest.mark.parametrize("mode", ["polling", "websocket"])
async def test_extension_flow(server, mode):
    result = await run_node("extension_flow.mjs", server.url, mode, "SillyTavern-8000")
    assert result["ok"], result.get("error")
    steps = result["steps"]
    assert result["transport"] == "websocket"  # polling upgraded, or websocket-only

    remember = steps["checkRememberMe"]
    assert remember["requestId"] == "checkRememberMe" and remember["success"] is True
    assert remember["result"]["success"] is True
    own = remember["result"]["result"]
    assert own == {
        "clientId": "SillyTavern-8000",
        "clientType": "SillyTavern",
        "isTrust": True,
        "Remember_me": True,
    }
    assert steps["bootstrapOther"]["status"] == "error"  # a key-less socket does nothing else
    safe = steps["loadNetworkSafe"]["result"]
    assert safe["success"] is True and safe["result"]["networkSafe"] is True
    assert "bcryptCost" not in safe["result"]  # only the public fields

    assert steps["identify"]["status"] == "ok" and len(steps["identify"]["key"]) == 43
    assert steps["allKeys"]["status"] == "ok"
    assert "SillyTavern-8000" in steps["allKeys"]["keys"]
    assert "$2" not in str(steps["allKeys"])
    clients = steps["connectedClients"]["clients"]
    assert [c["id"] for c in clients] == ["SillyTavern-8000"]
    assert clients[0]["description"].startswith("本客户端是扩展端")
    assert steps["rooms"] == ["SillyTavern-8000"]  # bare array on /clients
    assert steps["loadSettings"]["result"]["result"]["clientId"] == "SillyTavern-8000"
    assert steps["extensions"]["extensions"] == ["SillyTavern-8000"]
    assert steps["extensions"]["allTheSTSocket"] == ["SillyTavern-8000"]
    assert steps["saveSettings"] == {
        "requestId": "saveSettings",
        "success": True,
        "status": "ok",
        "result": {"success": True},
    }
    # key management for other clientIds is for admins only; its own key it may renew
    for step in ("generateOther", "removeOther"):
        assert steps[step]["status"] == "error" and steps[step]["message"] == "Unauthorized"
    assert steps["generate"]["status"] == "ok" and len(steps["generate"]["key"]) == 43

    reload = steps["reloadIdentify"]
    assert reload["status"] == "warning" and len(reload["key"]) == 43
    assert steps["reloadConnected"] is True and steps["oldStillConnected"] is True
    old_ack = steps["oldAck"]  # the round trip on the old socket really happened
    assert old_ack["status"] == "error" and "Unknown event" in old_ack["message"], old_ack
    # the reload got an additional key: the first one was not revoked
    assert steps["firstKeyStillWorks"] is True


async def test_extension_settings_save_is_applied_and_persisted(server):
    result = await run_node("extension_flow.mjs", server.url, "websocket", "SillyTavern-8000")
    assert result["ok"], result.get("error")
    saved = json.loads((server.data_dir / "settings" / "server_settings.json").read_text())
    assert saved["serverPort"] == 4000 and saved["transport"] == "websocket"
    assert server.app.live.current.network_safe is True


@pytest.mark.parametrize("mode", ["polling", "websocket"])
async def test_refusals_close_only_their_namespace(server, mode):
    key = await server.client("web")
    result = await run_node("multiplex.mjs", server.url, mode, "web", key)
    assert result["ok"], result.get("error")
    refusals = result["refusals"]
    assert refusals["/debug"]["message"] == "Unauthorized"
    assert refusals["/rooms"]["message"] == "Invalid key."
    assert refusals["/"]["message"] == "Client is not trusted."
    assert refusals["/clients"]["message"] == "Invalid key."
    for refusal in refusals.values():
        assert refusal["ok"] is False
        assert (
            refusal["data"]["status"] == "error"
            and refusal["data"]["message"] == refusal["message"]
        )
    assert result["llmConnected"] is True
    assert result["ack"]["status"] == "error" and "Unknown event" in result["ack"]["message"]
    assert result["roomsAfter"] is True


@pytest.mark.parametrize("mode", ["polling", "websocket"])
async def test_js_extension_answers_stream_and_non_stream(server, peers, mode):
    async with await start_node(
        "extension_stream.mjs", server.url, mode, "SillyTavern-8000", "2"
    ) as node:
        assert await node.line() == {"ready": True}
        web = await connect(server, peers, "web")
        ack = await web.call("/llm", "LLM_REQUEST", {"requestId": "r1", "message": "hello there"})
        assert ack["targets"] == ["SillyTavern-8000"]
        end = await web.next("/llm", "SERVER_STREAM_END", timeout=10)
        assert (
            end["data"] == "You said: hello there."
            and end["requestId"] == "r1"
            and end["status"] == "completed"
        )
        chunks = web.received("/llm", "SERVER_STREAM_DATA")
        assert "".join(c["data"] for c in chunks) == end["data"]
        await web.call("/llm", "LLM_REQUEST", {"requestId": "r2", "message": "again"})
        response = await web.next(
            "/llm", "LLM_RESPONSE", lambda p: p["requestId"] == "r2", timeout=10
        )
        assert response["data"] == "You said: again."
        result = await node.result(timeout=20)
    assert result["ok"], result
    assert result["_exit"] == 0
    assert (
        result["pong"]["data"] == "Yes,connection is fine."
        and result["pong"]["requestId"] == "ping"
    )
    assert [h["requestId"] for h in result["handled"]] == ["r1", "r2"]
    assert result["handled"][0] == {
        "requestId": "r1",
        "message": "hello there",
        "requestType": "newMessage",
        "target": "SillyTavern-8000",
    }
    flushed = result["flushed"]  # its last round trip, after both answers
    assert flushed["status"] == "error" and "Unknown event" in flushed["message"], flushed
