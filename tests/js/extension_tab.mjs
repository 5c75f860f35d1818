// One SillyTavern tab with the official socket.io-client: log in the way the
// extension does (getKey + IDENTIFY_SILLYTAVERN), open /llm, answer every
// LLM_REQUEST with a non-stream message naming the tab. Prints
// {ready, tab, warning} once logged in and {handled, tab} per request. A line
// "flush" on stdin makes one round trip on /llm and prints {flushed, handled}:
// the server handles a socket's packets in order, so any request sent to this
// tab before the flush is in by then.
// Usage: node extension_tab.mjs <url> <clientId> <tab name>
import { io } from "socket.io-client";
import { randomUUID } from "node:crypto";
import { createInterface } from "node:readline";

const [url, clientId, tab] = process.argv.slice(2);
const base = { clientType: "SillyTavern", clientId, desc: `tab ${tab}` };
const handled = [];

function open(nsp, auth) {
  const socket = io(url + nsp, { auth, transports: ["websocket"], reconnection: false, forceNew: true });
  return new Promise((resolve, reject) => {
    socket.once("connect", () => resolve(socket));
    socket.once("connect_error", (err) => reject(new Error(`${nsp}: ${err.message}`)));
  });
}

try {
  const st = await open("/sillytavern", { ...base, key: "getKey" });
  const identified = await st.timeout(5000).emitWithAck("IDENTIFY_SILLYTAVERN", { clientId });
  st.disconnect();
  const llm = await open("/llm", { ...base, key: identified.key });
  llm.on("LLM_REQUEST", (data) => {
    handled.push(data.requestId);
    console.log(JSON.stringify({ handled: data.requestId, tab }));
    llm.emit("message", { type: 0, data: `tab ${tab}: ${data.message}`, source: "client",
                          requestId: randomUUID(), outputId: randomUUID() });
  });
  console.log(JSON.stringify({ ready: true, tab, status: identified.status }));
  for await (const line of createInterface({ input: process.stdin })) {
    if (line.trim() !== "flush") continue;
    const ack = await llm.timeout(5000).emitWithAck("UNKNOWN_EVENT", {});
    console.log(JSON.stringify({ flushed: ack.status, handled, tab }));
  }
  llm.disconnect();
  process.exit(0);
} catch (err) {
  console.log(JSON.stringify({ ok: false, error: String(err && err.stack || err) }));
  process.exit(1);
}
