"""python-socketio's room bookkeeping, lighter per socket.

The manager keeps ``rooms[namespace][room] = {sid: eio_sid}`` and makes
every room a ``bidict`` (two dictionaries and an object). Only the
namespace's roster (room ``None``) is ever looked up backwards
(``sid_from_eio_sid``); every socket also gets a room of its own (its sid)
and one per chat room it mirrors (its personal room at least), so a plain
dictionary there saves about 280 bytes per room, four rooms per idle client
on ``/`` and ``/llm``.

Relies on what ``BaseManager`` does with a room other than the roster:
``in``, ``len``, item get/set/delete and ``_fwdm`` (the forward mapping, in
``get_participants``). tests/test_connection_memory.py checks both.
"""

from __future__ import annotations

from typing import Any

import socketio


class LeanRoom(dict[str, str]):
    __slots__ = ()

    @property
    def _fwdm(self) -> dict[str, str]:
        # the name get_participants() reads on a bidict: its forward mapping
        return self


class LeanManager(socketio.AsyncManager):  # type: ignore[misc]
    def basic_enter_room(
        self, sid: str, namespace: str, room: Any, eio_sid: str | None = None
    ) -> None:
        if room is not None:
            rooms = self.rooms.get(namespace)
            if rooms is not None and room not in rooms:
                rooms[room] = LeanRoom()
        super().basic_enter_room(sid, namespace, room, eio_sid=eio_sid)
