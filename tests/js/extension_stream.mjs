// The extension's answering side with the official socket.io-client: log in
// (getKey + IDENTIFY), take LLM_REQUESTs, answer the first by streaming the
// way the real forwarder does (no requestId, one streamId per token, five
// sub-chunks, no end-of-generation event), the second with a non-stream
// message, and answer the "Connection active?" ping test.
// Usage: node extension_stream.mjs <url> <polling|websocket> <clientId> <requests>
import { io } from "socket.io-client";
import { randomUUID } from "node:crypto";

const [url, mode, clientId, countArg] = process.argv.slice(2);
const transports = mode === "websocket" ? ["websocket"] : ["polling", "websocket"];
const base = { clientType: "SillyTavern", clientId, desc: "extension" };
const out = { handled: [] };

function open(nsp, auth) {
  const socket = io(url + nsp, { auth, transports, reconnection: false, forceNew: true });
  return new Promise((resolve, reject) => {
    socket.once("connect", () => resolve(socket));
    socket.once("connect_error", (err) => reject(new Error(`${nsp}: ${err.message}`)));
  });
}

function streamAnswer(llm, text) {
  const outputId = randomUUID();
  const tokens = text.match(/.{1,4}/gs);
  tokens.forEach((delta, n) => {
    const streamId = randomUUID();
    llm.emit("CLIENT_STREAM_START", { type: 1, clientId: undefined, streamId, outputId, numStreams: 5,
                                      source: undefined, requestId: undefined, target: "server" });
    const size = Math.ceil(delta.length / 5);
    for (let i = 0; i < 5; i++) {
      const data = delta.slice(i * size, Math.min((i + 1) * size, delta.length));
      const [event, type] = i === 4 ? ["CLIENT_STREAM_DATA_LAST", 6]
        : i === 0 && n === 0 ? ["CLIENT_STREAM_DATA_FIRST", 4] : ["CLIENT_STREAM_DATA_MIDDLE", 5];
      llm.emit(event, { type, streamId, outputId, clientId: undefined, chunkIndex: i, data,
                        source: undefined, requestId: undefined, target: "server" });
    }
    llm.emit("CLIENT_STREAM_END", { type: 3, streamId, outputId, clientId: undefined, source: undefined,
                                    requestId: undefined, target: "server" });
  });
  llm.emit("STOP_PROCESSING", {});
}

try {
  const st = await open("/sillytavern", { ...base, key: "getKey" });
  const { key } = await st.timeout(5000).emitWithAck("IDENTIFY_SILLYTAVERN", { clientId });
  st.disconnect();
  const llm = await open("/llm", { ...base, key });
  const pong = new Promise((resolve) => llm.once("message", resolve));
  llm.emit("message", { type: 0, data: "Connection active?", source: "client", requestId: "ping", outputId: randomUUID() });
  out.pong = await pong;
  const want = Number(countArg);
  await new Promise((resolve, reject) => {
    llm.on("LLM_REQUEST", (data) => {
      out.handled.push({ requestId: data.requestId, message: data.message, requestType: data.requestType, target: data.target });
      const answer = `You said: ${data.message}.`;
      if (out.handled.length === 1) streamAnswer(llm, answer);
      else llm.emit("message", { type: 0, data: answer, source: "client", requestId: randomUUID(), outputId: randomUUID() });
      if (out.handled.length >= want) {
        // the server handles a socket's events in order: once this is acked,
        // the answers emitted above have been sent and handled
        llm.timeout(5000).emitWithAck("UNKNOWN_EVENT", {}).then((ack) => {
          out.flushed = ack;
          resolve();
        }, reject);
      }
    });
    console.log(JSON.stringify({ ready: true }));
  });
  out.ok = true;
  llm.disconnect();
} catch (err) {
  out.ok = false;
  out.error = String(err && err.stack || err);
} finally {
  console.log(JSON.stringify(out));
  process.exit(out.ok ? 0 : 1);
}
