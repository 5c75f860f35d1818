"""Settings files, environment overrides and start-up failures."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from newage.errors import NewAgeError
from newage.settings import (
    LiveSettings,
    SettingsError,
    load_settings,
    settings_path,
    update_settings_file,
)
from tests.helpers.proc import ServerProcess, run_cli


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def settings_file(data: Path) -> Path:
    return data / "settings" / "server_settings.json"


BAD_SERVER_SETTINGS = [
    ("{not json", None, "invalid JSON at line 1 column 2"),
    ('["a list"]', None, "must contain a JSON object"),
    ('{"serverPort": "abc"}', "serverPort", "valid integer"),
    ('{"serverPort": 70000}', "serverPort", "less than or equal to 65535"),
    ('{"serverPort": 0}', "serverPort", "greater than or equal to 1"),
    ('{"networkSafe": "maybe"}', "networkSafe", "valid boolean"),
    (
        '{"defaultRoomMessageRequestMode": "Chaos"}',
        "defaultRoomMessageRequestMode",
        "unknown mode 'Chaos'",
    ),
    ('{"connectionPolicy": "Roulette"}', "connectionPolicy", "unknown policy 'Roulette'"),
    ('{"contextPageSize": -1}', "contextPageSize", "greater than or equal to 1"),
    ('{"socketIOPath": "socket"}', "socketIOPath", "absolute URL path"),
    ('{"corsOrigins": 5}', "corsOrigins", "valid list"),
]


@pytest.mark.parametrize(("text", "field", "problem"), BAD_SERVER_SETTINGS)
def test_bad_server_settings_stop_start_up_with_one_line(tmp_path: Path, text, field, problem):
    data = tmp_path / "d"
    write(settings_file(data), text)
    for command in (["serve"], ["check-config"]):
        out = run_cli(*command, "--data-dir", str(data))
        assert out.returncode == 3, out
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1, out.stderr
        line = lines[0]
        assert "Traceback" not in out.stderr
        assert str(settings_file(data)) in line
        if field:
            assert f": {field}: " in line
        assert problem in line


BAD_TRUST_FILES = [
    ('{"isTrust": true}', "clientId", "non-empty string"),
    ('{"clientId": "x", "isTrust": "yes"}', "isTrust", "true or false"),
    (
        '{"clientId": "x", "isTrust": true, "clientType": "root"}',
        "clientType",
        "unknown type 'root'",
    ),
    ('{"clientId": "x", "sillyTavernPassWord": 5}', "sillyTavernPassWord", "must be a string"),
    ("{oops", None, "invalid JSON"),
]


@pytest.mark.parametrize(("text", "field", "problem"), BAD_TRUST_FILES)
def test_bad_trust_files_stop_start_up(tmp_path: Path, text, field, problem):
    data = tmp_path / "d"
    bad = data / "settings" / "friend-settings.json"
    write(bad, text)
    out = run_cli("check-config", "--data-dir", str(data))
    assert out.returncode == 3
    line = out.stderr.strip()
    assert "\n" not in line and str(bad) in line and problem in line
    if field:
        assert f": {field}: " in line


def test_duplicate_client_ids_are_refused(tmp_path: Path):
    data = tmp_path / "d"
    write(data / "settings" / "a.json", '{"clientId": "same", "isTrust": true}')
    write(data / "settings" / "b.json", '{"clientId": "same", "isTrust": true}')
    out = run_cli("check-config", "--data-dir", str(data))
    assert out.returncode == 3 and "also declared in a.json" in out.stderr


def test_plaintext_password_is_replaced_by_its_hash(tmp_path: Path):
    data = tmp_path / "d"
    path = data / "settings" / "SillyTavern-8001-settings.json"
    write(
        path,
        json.dumps(
            {
                "clientId": "SillyTavern-8001",
                "isTrust": True,
                "sillyTavernPassWord": "hunter2",
                "sillyTavernMasterKey": "old",
                "custom": 1,
            }
        ),
    )
    assert run_cli("check-config", "--data-dir", str(data)).returncode == 0
    raw = json.loads(path.read_text())
    assert raw["sillyTavernPassWord"].startswith("$2b$")
    assert "hunter2" not in path.read_text()
    assert "sillyTavernMasterKey" not in raw  # obsolete key dropped
    assert raw["custom"] == 1  # unknown keys survive
    assert (path.stat().st_mode & 0o777) == 0o600
    first_hash = raw["sillyTavernPassWord"]
    run_cli("check-config", "--data-dir", str(data))
    assert json.loads(path.read_text())["sillyTavernPassWord"] == first_hash  # not re-hashed


def test_env_overrides_file_and_flags_override_env(tmp_path: Path):
    data = tmp_path / "d"
    write(settings_file(data), json.dumps({"serverPort": 4100, "networkSafe": True}))
    out = run_cli(
        "check-config",
        "--data-dir",
        str(data),
        env={"NEWAGE_SERVER_PORT": "4200", "NEWAGE_NETWORK_SAFE": "false"},
    )
    assert out.returncode == 0 and "port 4200" in out.stdout and "networkSafe False" in out.stdout
    bad = run_cli("check-config", "--data-dir", str(data), env={"NEWAGE_SERVER_PORT": "x"})
    assert bad.returncode == 3 and bad.stderr.startswith("environment: NEWAGE_SERVER_PORT: ")
    server = ServerProcess(data, env={"NEWAGE_SERVER_PORT": "1"})  # the --port flag wins
    server.start()
    server.stop()


def test_unknown_keys_survive_a_settings_update(tmp_path: Path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"serverPort": 4000, "extensionRooms": {"a": 1}, "Rooms": ["x"]}))
    updated = update_settings_file(path, {"serverPort": "4300", "debugMode": True})
    raw = json.loads(path.read_text())
    assert updated.server_port == 4300 and raw["serverPort"] == 4300  # coerced from a string
    assert raw["extensionRooms"] == {"a": 1} and raw["debugMode"] is True
    assert "Rooms" not in raw  # runtime-only key of the original, never written back
    with pytest.raises(SettingsError) as err:
        update_settings_file(path, {"serverPort": 99999})
    assert err.value.field == "serverPort"
    assert json.loads(path.read_text())["serverPort"] == 4300  # nothing half-written
    assert isinstance(err.value, NewAgeError) and err.value.code == "bad_settings"
    assert err.value.message == err.value.line  # one error type, the same one line


async def test_live_changes_are_written_in_order_and_none_is_lost(tmp_path: Path):
    settings = load_settings(tmp_path)
    live = LiveSettings(settings, settings_file(tmp_path))
    seen: list[tuple[bool, str]] = []
    live.on_change(lambda old, new: seen.append((new.debug_mode, new.log_level)))
    # started together, each in a worker thread: applied one after another
    # in call order, each on top of what the previous one wrote
    changes = [{"debugMode": True}, {"logLevel": "warn"}, {"debugMode": False}]
    results = await asyncio.gather(*(live.apply(c) for c in changes))
    assert seen == [(True, "info"), (True, "warn"), (False, "warn")]
    assert [(r.debug_mode, r.log_level) for r in results] == seen
    raw = json.loads(settings_file(tmp_path).read_text())
    assert raw["debugMode"] is False and raw["logLevel"] == "warn"
    with pytest.raises(SettingsError):
        await live.apply({"logLevel": "loud"})
    assert live.current.log_level == "warn"  # a refused change changes nothing
    assert json.loads(settings_file(tmp_path).read_text())["logLevel"] == "warn"


def test_missing_settings_file_is_written_with_defaults(tmp_path: Path):
    settings = load_settings(tmp_path)
    assert settings.server_port == 4000
    written = json.loads(settings_file(tmp_path).read_text())
    assert written["contextSendDelay"] == 100 and written["host"] == "127.0.0.1"


def test_mode_aliases_are_canonicalised(tmp_path: Path):
    write(settings_file(tmp_path), '{"defaultRoomMessageRequestMode": "Default"}')
    assert load_settings(tmp_path).default_room_message_request_mode.value == "HostSubmit"


def test_an_old_files_written_open_defaults_are_closed(tmp_path):
    """Files written before the origin check carry corsOrigins ['*'] as a
    default nobody chose; an explicit '*' in a current file stays."""
    path = settings_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"corsOrigins": ["*"], "forwardedAllowIps": ["127.0.0.1"]}))
    settings = load_settings(tmp_path)
    assert settings.cors_origins == [] and settings.forwarded_allow_ips == []
    assert json.loads(path.read_text())["corsOrigins"] == []

    current = {"corsOrigins": ["*"], "outboundMaxBytes": 16_000_000}
    path.write_text(json.dumps(current))
    assert load_settings(tmp_path).cors_origins == ["*"]
