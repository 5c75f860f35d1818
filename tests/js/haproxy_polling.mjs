// Many official clients over HTTP long-polling only, through HAProxy: each
// leaves from its own loopback address (HAProxy's `balance source` hashes it)
// and keeps HAProxy's cookie (withCredentials turns the Node cookie jar on).
// Usage: node haproxy_polling.mjs <url> <clientId> <key> <addr,addr,...>
import http from "node:http";
import { Manager } from "socket.io-client";

const [url, clientId, key, list] = process.argv.slice(2);
const out = { connected: 0, cookies: [] };

// connected one after the other: each connect writes to the SQLite file the
// processes share, and a burst from two processes can outwait its busy timeout
async function connect(localAddress, n) {
  const manager = new Manager(url, {
    transports: ["polling"],
    reconnection: false,
    withCredentials: true,
    agent: new http.Agent({ localAddress, keepAlive: true }),
  });
  const identity = `js-${n}`;
  const socket = manager.socket("/rooms", { auth: { clientId, key, identity } });
  sockets.push(socket);
  await new Promise((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("connect_error", reject);
  });
  return { manager, socket, identity };
}

async function roundTrips({ manager, socket, identity }) {
  for (let i = 0; i < 5; i++) {
    const ack = await socket.timeout(10000).emitWithAck("GET_ROOMS", {});
    if (ack.status !== "ok") throw new Error(`${identity}: ${JSON.stringify(ack)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  if (!socket.connected || manager.engine.transport.name !== "polling") {
    throw new Error(`${identity} lost its session`);
  }
  out.connected += 1;
  out.cookies.push(manager.engine._cookieJar._cookies.get("NEWAGE")?.value);
}

const sockets = [];
try {
  const clients = [];
  for (const [n, addr] of list.split(",").entries()) clients.push(await connect(addr, n));
  await Promise.all(clients.map(roundTrips));
  out.ok = true;
} catch (err) {
  out.ok = false;
  out.error = String((err && err.stack) || err);
} finally {
  sockets.forEach((s) => s.disconnect());
  console.log(JSON.stringify(out));
  process.exit(out.ok ? 0 : 1);
}
