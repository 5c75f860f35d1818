"""Trust files are replaced atomically and made durable with their directory."""

from __future__ import annotations

import os

from newage.protocol.names import ClientKind


async def test_trust_change_fsyncs_the_file_and_its_directory(server, monkeypatch):
    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    settings_dir = (server.data_dir / "settings").resolve()
    await server.trust("web", ClientKind.CLIENT)
    assert any(p.startswith(str(settings_dir) + "/.web-settings.json.") for p in synced), synced
    # the rename itself is durable only once the directory is synced, after it
    assert synced[-1] == str(settings_dir)
    assert (settings_dir / "web-settings.json").exists()
    assert not [p for p in settings_dir.iterdir() if p.name.endswith(".tmp")]
