// One Manager (one Engine.IO connection), several namespaces, mixed outcomes:
// refusals must close only their own namespace (docs/protocol.md).
// Usage: node multiplex.mjs <url> <polling|websocket> <clientId> <key>
import { Manager } from "socket.io-client";

const [url, mode, clientId, key] = process.argv.slice(2);
const transports = mode === "websocket" ? ["websocket"] : ["polling", "websocket"];
const manager = new Manager(url, { transports, reconnection: false });
const out = { refusals: {} };

const cache = {};
function open(nsp, auth) {
  // the manager keeps one socket per namespace and would reconnect it with
  // its old auth, so a second attempt reuses the socket with new auth
  let socket = cache[nsp];
  if (socket) {
    socket.auth = auth;
    socket.connect();
  } else {
    socket = cache[nsp] = manager.socket(nsp, { auth });
  }
  return new Promise((resolve) => {
    socket.once("connect", () => resolve({ socket, ok: true }));
    socket.once("connect_error", (err) => resolve({ socket, ok: false, message: err.message, data: err.data }));
  });
}

try {
  const llm = await open("/llm", { clientId, key });
  if (!llm.ok) throw new Error("llm refused: " + llm.message);
  for (const [nsp, auth] of [
    ["/debug", { clientId, key }],
    ["/rooms", { clientId, key: "wrong" }],
    ["/", { clientId: "nobody", key }],
    ["/clients", { clientId, key: "getKey" }],
  ]) {
    const r = await open(nsp, auth);
    out.refusals[nsp] = { ok: r.ok, message: r.message, data: r.data };
  }
  // the refusals are all in; a round trip on /llm, then its state
  out.ack = await llm.socket.timeout(3000).emitWithAck("UNKNOWN_EVENT", {})
    .catch((e) => ({ error: String(e) }));
  out.llmConnected = llm.socket.connected;
  const rooms = await open("/rooms", { clientId, key });
  out.roomsAfter = rooms.ok;
  out.ok = true;
} catch (err) {
  out.ok = false;
  out.error = String(err && err.stack || err);
} finally {
  manager.engine && manager.engine.close();
  console.log(JSON.stringify(out));
  process.exit(out.ok ? 0 : 1);
}
