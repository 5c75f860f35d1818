"""The command-line contract (README, "Command line"), against real processes."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

from newage import __version__
from tests.helpers.client import Peer, Refused, auth
from tests.helpers.proc import ServerProcess, arun_cli, run_cli
from tests.helpers.wait import eventually

KEY_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")


def test_version():
    out = run_cli("--version")
    assert out.returncode == 0
    assert out.stdout.strip() == f"newage {__version__}"


def test_init_writes_a_default_data_directory(tmp_path: Path):
    data = tmp_path / "d"
    out = run_cli("init", "--data-dir", str(data))
    assert out.returncode == 0, out.stderr
    settings = json.loads((data / "settings" / "server_settings.json").read_text())
    assert settings["serverPort"] == 4000
    assert settings["networkSafe"] is True
    assert settings["socketIOPath"] == "/socket.io"
    assert settings["defaultRoomMessageRequestMode"] == "Immediate"
    extension = json.loads((data / "settings" / "SillyTavern-8000-settings.json").read_text())
    assert extension == {
        "clientId": "SillyTavern-8000",
        "clientType": "SillyTavern",
        "isTrust": True,
        "Remember_me": True,
    }
    assert (data / "newage.db").exists()
    assert (data / "files").is_dir() and (data / "logs").is_dir()
    listing = run_cli("trust", "list", "--data-dir", str(data), "--json")
    assert [e["clientId"] for e in json.loads(listing.stdout)] == ["SillyTavern-8000"]


def test_keys_create_prints_only_the_key(tmp_path: Path):
    data = str(tmp_path / "d")
    assert run_cli("trust", "add", "bot", "--data-dir", data).returncode == 0
    out = run_cli("keys", "create", "bot", "--data-dir", data)
    assert out.returncode == 0
    lines = out.stdout.splitlines()
    assert len(lines) == 1 and KEY_RE.match(lines[0])
    listed = json.loads(run_cli("keys", "list", "--json", "--data-dir", data).stdout)
    assert [r["clientId"] for r in listed] == ["bot"]
    assert lines[0] not in json.dumps(listed)  # metadata only, never the key
    assert "$2" not in json.dumps(listed)  # nor its hash


def test_keys_create_for_untrusted_client_warns_on_stderr(tmp_path: Path):
    out = run_cli("keys", "create", "stranger", "--data-dir", str(tmp_path / "d"))
    assert out.returncode == 0
    assert len(out.stdout.splitlines()) == 1
    assert "not trusted" in out.stderr


def test_trust_add_types_and_password_are_kept_in_the_trust_file(tmp_path: Path):
    data = tmp_path / "d"
    out = run_cli(
        "trust",
        "add",
        "SillyTavern-9000",
        "--type",
        "SillyTavern",
        "--password",
        "pw",
        "--data-dir",
        str(data),
    )
    assert out.returncode == 0, out.stderr
    raw = json.loads((data / "settings" / "SillyTavern-9000-settings.json").read_text())
    assert raw["clientType"] == "SillyTavern" and raw["isTrust"] is True
    assert raw["sillyTavernPassWord"].startswith("$2b$")  # hashed, never plaintext
    assert "pw" not in (data / "settings" / "SillyTavern-9000-settings.json").read_text().split('"')
    bad = run_cli("trust", "add", "web", "--type", "root", "--data-dir", str(data))
    assert bad.returncode == 2
    wrong_prefix = run_cli("trust", "add", "web", "--type", "SillyTavern", "--data-dir", str(data))
    assert wrong_prefix.returncode == 1
    assert "start with 'SillyTavern'" in wrong_prefix.stderr


def test_trust_remove_and_revoke_report_nothing_to_do(tmp_path: Path):
    data = str(tmp_path / "d")
    assert run_cli("trust", "remove", "ghost", "--data-dir", data).returncode == 1
    assert run_cli("keys", "revoke", "ghost", "--data-dir", data).returncode == 1


async def refused_soon(url: str, data: dict, message: str) -> None:
    """Connects are refused within a second (the change came from another process)."""
    for _ in range(20):
        peer = Peer(url)
        try:
            await peer.open("/llm", data)
        except Refused as err:
            assert err.message == message
            return
        finally:
            await peer.close()
        await asyncio.sleep(0.05)
    raise AssertionError(f"still accepted: {data['clientId']}")


async def test_cli_changes_reach_a_running_server_without_restart(tmp_path: Path):
    data = tmp_path / "d"
    server = ServerProcess(data).start()
    peer = Peer(server.url)
    try:
        assert (await arun_cli("trust", "add", "bot", "--data-dir", str(data))).returncode == 0
        created = await arun_cli("keys", "create", "bot", "--data-dir", str(data))
        key = created.stdout.strip()
        await peer.open("/llm", auth("bot", key))
        await peer.open("/rooms", auth("bot", key))

        # rotation: the old socket stays, the new key works, the old one no longer does
        rotated = (await arun_cli("keys", "create", "bot", "--data-dir", str(data))).stdout.strip()
        assert rotated != key
        # the server polls for other processes' changes every 100 ms
        await refused_soon(server.url, auth("bot", key), "Invalid key.")
        fresh = Peer(server.url)
        await fresh.open("/llm", auth("bot", rotated))
        await fresh.close()
        assert peer.connected("/llm")

        # revocation closes live sockets (within about a second; 5 s for busy machines)
        assert (await arun_cli("keys", "revoke", "bot", "--data-dir", str(data))).returncode == 0
        await eventually(
            lambda: not peer.connected("/llm") and not peer.connected("/rooms"), timeout=5
        )
        await refused_soon(server.url, auth("bot", rotated), "Invalid key.")

        # trust withdrawal
        key2 = (await arun_cli("keys", "create", "bot", "--data-dir", str(data))).stdout.strip()
        peer2 = Peer(server.url)
        await peer2.open("/llm", auth("bot", key2))
        assert (await arun_cli("trust", "remove", "bot", "--data-dir", str(data))).returncode == 0
        await eventually(lambda: not peer2.connected("/llm"), timeout=5)
        await peer2.close()
        await refused_soon(server.url, auth("bot", key2), "Client is not trusted.")
    finally:
        await peer.close()
        server.stop()


async def test_serve_creates_a_missing_data_directory(tmp_path: Path):
    data = tmp_path / "new" / "data"
    server = ServerProcess(data).start()
    try:
        assert (data / "settings" / "server_settings.json").exists()
        assert (data / "logs" / "combined.log").exists()
    finally:
        log = server.stop()
    assert "ready on 127.0.0.1" in log


def test_extension_install_copies_the_extension(tmp_path: Path):
    st = tmp_path / "SillyTavern"
    (st / "public").mkdir(parents=True)
    (st / "server.js").write_text("// SillyTavern\n")
    old = st / "data" / "alice" / "extensions" / "newage"
    old.mkdir(parents=True)
    (old / "stale.js").write_text("old")
    out = run_cli("extension", "install", "--sillytavern-dir", str(st), "--user", "alice")
    assert out.returncode == 0, out.stderr
    assert str(old) in out.stdout
    source = Path(__file__).resolve().parents[1] / "extension"
    shipped = sorted(p.relative_to(source) for p in source.rglob("*") if p.is_file())
    installed = sorted(p.relative_to(old) for p in old.rglob("*") if p.is_file())
    assert installed == shipped and Path("manifest.json") in shipped
    for rel in shipped:
        assert (old / rel).read_bytes() == (source / rel).read_bytes()
    manifest = json.loads((old / "manifest.json").read_text())
    assert manifest["js"] == "index.js"

    out = run_cli("extension", "install", "--sillytavern-dir", str(tmp_path))
    assert out.returncode == 1 and "is not a SillyTavern folder" in out.stderr
    out = run_cli("extension", "install", "--sillytavern-dir", str(st), "--user", "../x")
    assert out.returncode == 1 and "Invalid SillyTavern user name" in out.stderr
    assert not (st / "data" / "default-user").exists()


def test_the_extension_carries_the_client_the_server_serves():
    """One Socket.IO client version: the extension's copy (its page cannot
    import the server's across origins) is the server's file."""
    root = Path(__file__).resolve().parents[1]
    served = root / "src" / "newage" / "web" / "public" / "socket.io.esm.min.js"
    carried = root / "extension" / "lib" / "socket.io.esm.min.js"
    assert carried.read_bytes() == served.read_bytes()
