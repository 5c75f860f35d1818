// The reference relay for bench/: a minimal socket.io v4 server doing, per
// event, the relay newage does on /llm, and nothing else (no history, no
// persistence, no validation beyond a fixed key).
//
// * Namespaces `/`, `/llm`, `/rooms`; every connect must carry
//   auth {clientId, key} with key === $BENCH_KEY (when set). The socket joins
//   a room named after its identity (auth.identity, else clientId); an
//   extension declares clientType 'SillyTavern'.
// * JOIN_ROOM {roomName} (ack) joins a further room (fan-out).
// * LLM_REQUEST {requestId, message, target, targetRoom?} from a client
//   (ack) is forwarded as LLM_REQUEST to the target extension and queued for
//   it.
// * From the extension, CLIENT_STREAM_START / _DATA_FIRST / _MIDDLE / _LAST /
//   _END as the real extension sends them: each non-empty data chunk goes to
//   the requester's room (targetRoom, default its identity) as one
//   SERVER_STREAM_DATA {requestId, outputId, streamId, chunkIndex, type, data,
//   source, identity, roomName, seq, chunks: 1}; STOP_PROCESSING, `final:
//   true` on an END, or a new outputId end the output with SERVER_STREAM_END
//   {..., status, data: the whole text}. (The load generator ends outputs
//   with STOP_PROCESSING; `final` and a new outputId complete the relay
//   semantics docs/performance.md describes.)
//
// Only what bench/reference/loadgen.mjs and bench/connect_rate.py send is
// handled: the reference does not take part in the history scenario.
//
// Usage: PORT=4100 BENCH_KEY=k node server.mjs   (prints "ready <port>")
import { createServer } from "node:http";
import { Server } from "socket.io";

const port = Number(process.env.PORT || 0);
const KEY = process.env.BENCH_KEY || "";

const http = createServer((req, res) => {
  if (req.url === "/healthz") {
    res.writeHead(200, { "content-type": "application/json" });
    res.end('{"status":"ok"}');
    return;
  }
  res.writeHead(404);
  res.end();
});
const io = new Server(http, {
  cors: { origin: true, credentials: true },
  maxHttpBufferSize: 4e6,
  pingInterval: 25000,
  pingTimeout: 20000,
});

function auth(socket, next) {
  const a = socket.handshake.auth || {};
  if (typeof a.clientId !== "string" || !a.clientId) return next(new Error("clientId is required."));
  if (KEY && a.key !== KEY) return next(new Error("Invalid key."));
  socket.data.identity = typeof a.identity === "string" && a.identity ? a.identity : a.clientId;
  socket.data.extension = a.clientType === "SillyTavern" || a.clientType === "extension";
  next();
}

function joinRoom(socket) {
  socket.on("JOIN_ROOM", (data, ack) => {
    const room = data && typeof data === "object" ? data.roomName : data;
    if (typeof room === "string" && room) socket.join(room);
    if (typeof ack === "function") ack({ status: "ok", success: true, roomName: room });
  });
}

for (const name of ["/", "/rooms"]) {
  const nsp = io.of(name);
  nsp.use(auth);
  nsp.on("connection", (socket) => {
    socket.join(socket.data.identity);
    joinRoom(socket);
  });
}

// ------------------------------------------------------------------ /llm
const llm = io.of("/llm");
llm.use(auth);
const extensions = new Map(); // identity -> number of its /llm sockets
const queues = new Map(); // extension -> [request] in flight, oldest first
const current = new Map(); // extension -> its open output
const streams = new Map(); // extension + "\0" + streamId -> output

function fail(ack, message) {
  if (typeof ack === "function") ack({ status: "error", success: false, message });
}

function resolve(ext, requestId) {
  const queue = queues.get(ext) || [];
  return queue.find((r) => r.requestId === requestId) || queue[0] || null;
}

function done(request) {
  const queue = queues.get(request.ext);
  const i = queue ? queue.indexOf(request) : -1;
  if (i >= 0) queue.splice(i, 1);
}

function finish(output, status = "completed") {
  current.delete(output.ext);
  for (const id of output.streamIds) streams.delete(output.ext + "\0" + id);
  const request = output.request;
  if (!request) return;
  llm.to(request.room).emit("SERVER_STREAM_END", {
    requestId: request.requestId, outputId: output.outputId, streamId: output.lastStream,
    source: output.ext, identity: output.ext, roomName: request.room, status,
    data: output.parts.join(""),
  });
  done(request);
}

llm.on("connection", (socket) => {
  const identity = socket.data.identity;
  socket.join(identity);
  joinRoom(socket);
  if (socket.data.extension) {
    extensions.set(identity, (extensions.get(identity) || 0) + 1);
    socket.on("disconnect", () => {
      const left = extensions.get(identity) - 1;
      if (left > 0) return extensions.set(identity, left);
      extensions.delete(identity);
      const output = current.get(identity);
      if (output) finish(output, "failed");
      queues.delete(identity);
    });
    extensionEvents(socket, identity);
    return;
  }

  socket.on("LLM_REQUEST", (data, ack) => {
    if (!data || typeof data.requestId !== "string" || !data.requestId) return fail(ack, "Invalid LLM request data.");
    const room = typeof data.targetRoom === "string" && data.targetRoom ? data.targetRoom : identity;
    const ext = Array.isArray(data.target) ? data.target[0] : data.target;
    if (!extensions.has(ext)) return fail(ack, `Target extension ${ext} is not connected.`);
    const request = { requestId: data.requestId, room, ext, requester: identity };
    if (!queues.has(ext)) queues.set(ext, []);
    queues.get(ext).push(request);
    const message = data.message ?? data.prompt ?? data.data;
    llm.to(ext).emit("LLM_REQUEST", {
      mode: "Immediate", requestId: data.requestId, targetRoom: room, requestingIdentity: identity,
      message, requestType: data.requestType || "newMessage", target: ext,
    });
    if (typeof ack === "function") {
      ack({ status: "ok", success: true, message: "Request received.", requestId: data.requestId,
            roomName: room, forwarded: true, queued: false, targets: [ext] });
    }
  });
});

function extensionEvents(socket, ext) {
  socket.on("CLIENT_STREAM_START", (data) => {
    let output = current.get(ext);
    if (output && output.outputId !== data.outputId) {
      finish(output);
      output = undefined;
    }
    if (!output) {
      output = { outputId: data.outputId, ext, request: resolve(ext, data.requestId), seq: 0,
                 parts: [], streamIds: [], lastStream: null };
      current.set(ext, output);
    }
    output.streamIds.push(data.streamId);
    output.lastStream = data.streamId;
    streams.set(ext + "\0" + data.streamId, output);
  });

  const relay = (data) => {
    const output = streams.get(ext + "\0" + data.streamId);
    if (!output || !output.request || typeof data.data !== "string" || !data.data) return;
    const request = output.request;
    output.parts.push(data.data);
    output.seq += 1;
    llm.to(request.room).emit("SERVER_STREAM_DATA", {
      requestId: request.requestId, outputId: output.outputId, streamId: data.streamId,
      chunkIndex: data.chunkIndex, type: data.type, data: data.data, source: ext, identity: ext,
      roomName: request.room, seq: output.seq, chunks: 1,
    });
  };
  socket.on("CLIENT_STREAM_DATA_FIRST", relay);
  socket.on("CLIENT_STREAM_DATA_MIDDLE", relay);
  socket.on("CLIENT_STREAM_DATA_LAST", relay);

  socket.on("CLIENT_STREAM_END", (data) => {
    const output = streams.get(ext + "\0" + data.streamId);
    if (output && data.final) finish(output);
  });
  socket.on("STOP_PROCESSING", (data, ack) => {
    const output = current.get(ext);
    if (output) finish(output);
    if (typeof ack === "function") ack({ status: "ok", success: true });
  });
}

http.listen(port, "127.0.0.1", () => {
  console.log(`ready ${http.address().port}`);
});
for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => {
    io.close();
    process.exit(0);
  });
}
