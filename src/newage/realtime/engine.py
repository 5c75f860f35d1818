"""A leaner Engine.IO socket for the websocket transport.

python-engineio's socket waits for each inbound websocket message through a
new task wrapped in ``asyncio.wait_for`` (and for each outbound batch through
``wait_for`` too): about 7 µs per message, the largest single cost of the
seven inbound events of every streamed token. This subclass keeps the
library's behaviour (upgrade handshake, writer task, close) and changes only
how it waits:

* inbound: a plain ``await`` of the next message. A dead peer is still
  noticed: uvicorn pings every websocket (``ws_ping_interval``) and closes it
  when the pong does not come, and Engine.IO's own ping timeout closes the
  socket at the protocol level.
* outbound: ``asyncio.timeout`` instead of ``wait_for`` (no task per batch).

Sockets are switched to this class as they connect (``NewAgeServer``), so
the rest of python-engineio (pinned to 4.15.x) is untouched. The upgrade
path below is the library's, unchanged; the JS-client tests exercise it
over polling-then-upgrade and websocket-only.
"""

from __future__ import annotations

import asyncio
from typing import Any

from engineio import async_socket, exceptions, packet


class LeanSocket(async_socket.AsyncSocket):  # type: ignore[misc]
    async def poll(self) -> list[Any]:
        """Wait for packets to send to the client."""
        try:
            async with asyncio.timeout(self.server.ping_interval + self.server.ping_timeout):
                packets = [await self.queue.get()]
            self.queue.task_done()
        except (TimeoutError, asyncio.CancelledError):
            raise exceptions.QueueEmpty() from None
        if packets == [None]:
            return []
        while True:
            try:
                pkt = self.queue.get_nowait()
                self.queue.task_done()
                if pkt is None:
                    self.queue.put_nowait(None)
                    break
                packets.append(pkt)
            except asyncio.QueueEmpty:
                break
        return packets

    async def _websocket_handler(self, ws: Any) -> None:
        """Engine.IO handler for websocket transport."""

        async def websocket_wait() -> Any:
            data = await ws.wait()
            if data and len(data) > self.server.max_http_buffer_size:
                raise ValueError("packet is too large")
            return data

        if self.connected:  # type: ignore[has-type]
            # the socket was already connected, so this is an upgrade
            self.upgrading = True  # hold packet sends during the upgrade
            try:
                pkt = await websocket_wait()
            except OSError:
                return
            decoded_pkt = packet.Packet(encoded_packet=pkt)
            if decoded_pkt.packet_type != packet.PING or decoded_pkt.data != "probe":
                self.server.logger.info("%s: Failed websocket upgrade, no PING packet", self.sid)
                self.upgrading = False
                return
            await ws.send(packet.Packet(packet.PONG, data="probe").encode())
            await self.queue.put(packet.Packet(packet.NOOP))  # end poll
            try:
                pkt = await websocket_wait()
            except OSError:
                self.upgrading = False
                return
            decoded_pkt = packet.Packet(encoded_packet=pkt)
            if decoded_pkt.packet_type != packet.UPGRADE:
                self.upgraded = False
                self.server.logger.info(
                    "%s: Failed websocket upgrade, expected UPGRADE packet, received %s instead.",
                    self.sid,
                    pkt,
                )
                self.upgrading = False
                return
            self.upgraded = True
            self.upgrading = False
        else:
            self.connected = True
            self.upgraded = True

        async def writer() -> None:
            while True:
                try:
                    packets = await self.poll()
                except exceptions.QueueEmpty:
                    break
                if not packets:
                    break  # empty packet list returned -> connection closed
                try:
                    for pkt in packets:
                        await ws.send(pkt.encode())
                except Exception:
                    break
            await ws.close()

        writer_task = asyncio.ensure_future(writer())
        self.server.logger.info("%s: Upgrade to websocket successful", self.sid)

        while True:
            try:
                p = await websocket_wait()
            except Exception:
                break
            if p is None:
                break  # connection closed by client
            try:
                await self.receive(packet.Packet(encoded_packet=p))
            except exceptions.UnknownPacketError:
                pass
            except exceptions.SocketIsClosedError:
                self.server.logger.info("Receive error -- socket is closed")
                break
            except Exception:
                # log and go on: one bad packet must not drop the connection
                self.server.logger.exception("Unknown receive error")

        await self.queue.put(None)  # unlock the writer task so it can exit
        await writer_task
        await self.close(wait=False, abort=True, reason=self.server.reason.TRANSPORT_CLOSE)
