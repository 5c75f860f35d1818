// The load generator of bench/: the same clients against newage and the
// reference relay. Clients speak Socket.IO v5 / Engine.IO v4 over a websocket
// themselves (RawConn below: what socket.io-client puts on the wire, for a
// fraction of its CPU); BENCH_CLIENT=socket.io-client uses the official
// client instead.
//
// Usage: node loadgen.mjs '<json config>'   (bench/run.py builds the config)
//   {scenario: relay|fanout|concurrency|idle|history, kind: ours|reference,
//    url, pid, clkTck, runs, params, creds: {client, ext, admin}}
// Prints one JSON line per run ({"run": i, ...}) and a last line
// {"ok": true, "runs": [...]} (or {"ok": false, "error"}); progress on stderr.
//
// Tokens: each token is 20 characters, `NNNNNNN.TTTTTTTTTTT|` (its number
// and the send time in µs of this process's clock), sent the way the real
// extension sends a token: CLIENT_STREAM_START, five 4-character data
// sub-chunks (FIRST for index 0 of the first token, LAST for index 4, MIDDLE
// otherwise), CLIENT_STREAM_END. Receivers concatenate `data` in arrival
// order (a coalesced event carries several sub-chunks), cut at `|`, and
// check every token arrives once and in order (and `seq` counts 1, 2, ...);
// latency = arrival time - T. The SERVER_STREAM_END must carry the whole text.
import { Manager } from "socket.io-client";
import { randomUUID } from "node:crypto";
import { readFileSync, readdirSync } from "node:fs";
import { performance } from "node:perf_hooks";
import WebSocket from "ws";

const cfg = JSON.parse(process.argv[2]);
const P = cfg.params || {};
const OURS = cfg.kind === "ours";

// ------------------------------------------------------------------ helpers
const nowUs = () => Math.round(performance.now() * 1000);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (...a) => process.stderr.write(`[loadgen ${cfg.scenario}/${cfg.kind}] ${a.join(" ")}\n`);

function serverCpu() {
  // user + system time of the server process (all its threads), /proc/<pid>/stat
  const stat = readFileSync(`/proc/${cfg.pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) / cfg.clkTck;
}

// CPU time of the server's threads in seconds, ns resolution
// (/proc/<pid>/task/*/schedstat; time of exited threads is not counted).
function serverCpuPrecise() {
  let ns = 0;
  for (const task of readdirSync(`/proc/${cfg.pid}/task`)) {
    try {
      ns += Number(readFileSync(`/proc/${cfg.pid}/task/${task}/schedstat`, "utf8").split(" ")[0]);
    } catch {
      // the thread exited
    }
  }
  return ns / 1e9;
}

function serverRss() {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${cfg.pid}/status`, "utf8"));
  return m ? Number(m[1]) * 1024 : 0;
}

// Busy CPU seconds of the whole machine (/proc/stat), to tell how much of
// it went to other processes during a run (the machine may be shared).
function machineBusy() {
  const f = readFileSync("/proc/stat", "utf8").split("\n", 1)[0].trim().split(/\s+/).slice(1).map(Number);
  return (f[0] + f[1] + f[2] + f[5] + f[6] + f[7]) / cfg.clkTck;
}

// Read busy1 together with the server's and our own CPU at the end of the
// window, before any checking: the checking is ours, not another process's.
function otherCpu(busy0, busy1, serverUsed, selfUsed, seconds) {
  return round((busy1 - busy0 - serverUsed - selfUsed) / seconds, 2);
}

function selfCpu(since) {
  const u = process.cpuUsage(since);
  return (u.user + u.system) / 1e6;
}

// Nearest-rank percentile of sorted values.
function pct(sorted, p) {
  if (!sorted.length) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))];
}

// Median of sorted values: the mean of the two middle ones for an even count.
function median(sorted) {
  const n = sorted.length;
  if (!n) return null;
  return n % 2 ? sorted[(n - 1) / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
}

const sortedOf = (values) => Float64Array.from(values).sort();

function latencyStats(samplesUs) {
  const s = sortedOf(samplesUs);
  const ms = (v) => (v === null ? null : Math.round(v / 10) / 100);
  return { latency_p50_ms: ms(median(s)), latency_p99_ms: ms(pct(s, 0.99)), latency_max_ms: ms(pct(s, 1)) };
}

// Waits until the server is (nearly) idle: a previous run's backlog must not
// leak into the next one.
async function quiet(maxS = 30) {
  const until = Date.now() + maxS * 1000;
  let before = serverCpu();
  while (Date.now() < until) {
    await sleep(500);
    const now = serverCpu();
    if (now - before < 0.05) return;
    before = now;
  }
  log(`server still busy after ${maxS} s`);
}

const round = (v, d = 1) => (v === null || !Number.isFinite(v) ? null : Math.round(v * 10 ** d) / 10 ** d);

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`timeout: ${what}`)), ms); }),
  ]).finally(() => clearTimeout(timer));
}

// ------------------------------------------------------------------ clients
// A minimal Socket.IO v5 / Engine.IO v4 client over one websocket (`ws`),
// any number of namespaces: what socket.io-client puts on the wire, at a
// fraction of its CPU (the load generator shares the 2 cores with the
// server). BENCH_CLIENT=socket.io-client uses the official client instead.
class RawNsp {
  constructor(conn, name) {
    this.conn = conn;
    this.name = name;
    this.prefix = name === "/" ? "" : name + ",";
    this.handlers = new Map(); // event -> [fn], copied on write
    this.connected = false;
    this.outcome = null;
  }

  emit(event, data) {
    this.conn.send("42" + this.prefix + JSON.stringify([event, data]));
  }

  emitWithAck(event, data) {
    const id = this.conn.nextId++;
    return new Promise((resolve) => {
      this.conn.acks.set(id, resolve);
      this.conn.send("42" + this.prefix + id + JSON.stringify([event, data]));
    });
  }

  on(event, fn) {
    this.handlers.set(event, [...(this.handlers.get(event) || []), fn]);
  }

  off(event, fn) {
    const list = this.handlers.get(event);
    if (list) this.handlers.set(event, list.filter((f) => f !== fn));
  }

  disconnect() {
    if (this.connected) this.conn.send("41" + this.prefix);
    this.connected = false;
    this.conn.closeIfIdle();
  }
}

class RawConn {
  constructor(url) {
    this.ws = new WebSocket(url.replace(/^http/, "ws") + "/socket.io/?EIO=4&transport=websocket",
                            { perMessageDeflate: false });
    this.nsps = new Map();
    this.acks = new Map();
    this.nextId = 0;
    this.opened = new Promise((resolve, reject) => {
      this.onOpen = resolve;
      this.ws.once("error", reject);
    });
    this.ws.on("message", (buf) => this.receive(buf.toString()));
    this.ws.on("close", () => { for (const n of this.nsps.values()) n.connected = false; });
  }

  send(text) {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(text);
  }

  async namespace(name, auth) {
    await this.opened;
    const nsp = new RawNsp(this, name);
    this.nsps.set(name, nsp);
    const outcome = new Promise((resolve, reject) => { nsp.outcome = { resolve, reject }; });
    this.send("40" + nsp.prefix + JSON.stringify(auth));
    await outcome;
    return nsp;
  }

  closeIfIdle() {
    for (const n of this.nsps.values()) if (n.connected) return;
    this.ws.close();
  }

  receive(text) {
    const eio = text.charCodeAt(0);
    if (eio === 50) return this.send("3"); // "2": ping
    if (eio === 48) return this.onOpen(); // "0": open
    if (eio !== 52) return; // "4": message
    const type = text.charCodeAt(1) - 48;
    let i = 2;
    let name = "/";
    if (text[2] === "/") {
      const comma = text.indexOf(",", 2);
      name = comma < 0 ? text.slice(2) : text.slice(2, comma);
      i = comma < 0 ? text.length : comma + 1;
    }
    const nsp = this.nsps.get(name);
    let j = i;
    if (type === 2 || type === 3) {
      while (j < text.length && text.charCodeAt(j) >= 48 && text.charCodeAt(j) <= 57) j++;
    }
    const payload = j < text.length ? JSON.parse(text.slice(j)) : null;
    if (type === 2) { // EVENT
      const list = nsp && nsp.handlers.get(payload[0]);
      if (list) for (const fn of list) fn(payload[1]);
    } else if (type === 3) { // ACK
      const id = Number(text.slice(i, j));
      const resolve = this.acks.get(id);
      this.acks.delete(id);
      if (resolve) resolve(payload[0]);
    } else if (type === 0 && nsp) { // CONNECT
      nsp.connected = true;
      nsp.outcome.resolve();
    } else if (type === 4 && nsp) { // CONNECT_ERROR
      nsp.outcome.reject(new Error(`${name}: ${payload && payload.message}`));
    } else if (type === 1 && nsp) { // DISCONNECT
      nsp.connected = false;
    }
  }
}

const OFFICIAL = process.env.BENCH_CLIENT === "socket.io-client";

// One Engine.IO connection carrying the given namespaces.
async function open(auth, namespaces = ["/llm"]) {
  const sockets = {};
  if (OFFICIAL) {
    const manager = new Manager(cfg.url, { transports: ["websocket"], reconnection: false, timeout: 60000 });
    await withTimeout(Promise.all(namespaces.map((ns) => new Promise((resolve, reject) => {
      const socket = manager.socket(ns, { auth });
      sockets[ns] = socket;
      socket.once("connect", resolve);
      socket.once("connect_error", (err) => reject(new Error(`${ns} ${auth.identity || auth.clientId}: ${err.message}`)));
    }))), 60000, "connect");
  } else {
    const conn = new RawConn(cfg.url);
    for (const ns of namespaces) sockets[ns] = await withTimeout(conn.namespace(ns, auth), 60000, "connect");
  }
  return { sockets, llm: sockets["/llm"], close() { for (const s of Object.values(sockets)) s.disconnect(); } };
}

async function openMany(count, authOf, namespaces, parallel = 25) {
  const conns = new Array(count);
  let next = 0;
  async function worker() {
    while (next < count) {
      const i = next++;
      conns[i] = await open(authOf(i), namespaces);
    }
  }
  await Promise.all(Array.from({ length: Math.min(parallel, count) }, worker));
  return conns;
}

const clientAuth = (identity) => ({ clientId: cfg.creds.client.clientId, key: cfg.creds.client.key, identity, clientType: "web-app" });
const extAuth = (identity) => ({ clientId: cfg.creds.ext.clientId, key: cfg.creds.ext.key, identity, clientType: "SillyTavern", desc: "bench extension" });
const adminAuth = () => ({ clientId: cfg.creds.admin.clientId, key: cfg.creds.admin.key, clientType: "monitor" });

function ack(socket, event, data, ms = 30000) {
  return withTimeout(socket.emitWithAck(event, data), ms, event).then((reply) => {
    if (!reply || reply.status !== "ok") throw new Error(`${event} refused: ${JSON.stringify(reply)}`);
    return reply;
  });
}

// A fan-out room: newage through an admin's /rooms (CREATE_ROOM,
// ADD_CLIENT_TO_ROOM); the reference through JOIN_ROOM.
async function makeRoom(room, members) {
  if (!OURS) {
    await Promise.all(members.map((c) => ack(c.llm, "JOIN_ROOM", { roomName: room })));
    return;
  }
  const admin = await open(adminAuth(), ["/rooms"]);
  const rooms = admin.sockets["/rooms"];
  await ack(rooms, "CREATE_ROOM", { roomName: room });
  for (const c of members) await ack(rooms, "ADD_CLIENT_TO_ROOM", { identity: c.identity, roomName: room, role: "guest" });
  admin.close();
}

// ------------------------------------------------------------------ the extension wire protocol
const token = (n, t) => String(n).padStart(7, "0") + "." + String(t).padStart(11, "0") + "|";

function sendToken(ext, outputId, n, first, t = nowUs()) {
  const text = token(n, t);
  const streamId = randomUUID();
  ext.emit("CLIENT_STREAM_START", { type: 1, streamId, outputId, numStreams: 5, target: "server" });
  for (let i = 0; i < 5; i++) {
    const [event, type] = i === 4 ? ["CLIENT_STREAM_DATA_LAST", 6]
      : i === 0 && first ? ["CLIENT_STREAM_DATA_FIRST", 4] : ["CLIENT_STREAM_DATA_MIDDLE", 5];
    ext.emit(event, { type, streamId, outputId, chunkIndex: i, data: text.slice(i * 4, i * 4 + 4), target: "server" });
  }
  ext.emit("CLIENT_STREAM_END", { type: 3, streamId, outputId, target: "server" });
  return text;
}

// Reassembles one output at one receiver and checks the token sequence.
class Receiver {
  constructor(onToken) {
    this.onToken = onToken;
    this.buf = "";
    this.parts = [];
    this.next = 0;
    this.tokens = 0;
    this.lost = 0;
    this.reordered = 0;
    this.seq = 0;
    this.seqErrors = 0;
    this.events = 0;
    this.chunks = 0;
    this.end = null;
    this.problems = [];
  }

  problem(what) {
    if (this.problems.length < 5) this.problems.push({ atEvent: this.events, ...what });
  }

  feed(d) {
    this.events += 1;
    if (d.seq !== this.seq + 1) {
      this.seqErrors += 1;
      this.problem({ kind: "seq", expected: this.seq + 1, got: d.seq, chunkIndex: d.chunkIndex, data: d.data, streamId: d.streamId });
    }
    this.seq = d.seq;
    this.chunks += d.chunks || 1;
    this.parts.push(d.data);
    this.buf += d.data;
    let cut;
    while ((cut = this.buf.indexOf("|")) >= 0) {
      const tok = this.buf.slice(0, cut);
      this.buf = this.buf.slice(cut + 1);
      const n = Number(tok.slice(0, 7));
      const sent = Number(tok.slice(8));
      if (n === this.next) this.next += 1;
      else {
        this.problem({ kind: "token", expected: this.next, got: n, token: tok });
        if (n > this.next) { this.lost += n - this.next; this.next = n + 1; } else this.reordered += 1;
      }
      this.tokens += 1;
      this.onToken(n, nowUs() - sent);
    }
  }

  // Tokens never received count as lost; the END must carry the whole text.
  verdict(expectedTokens, expectedText) {
    const text = this.parts.join("");
    return {
      lost: this.lost + Math.max(0, expectedTokens - this.next),
      reordered: this.reordered + this.seqErrors,
      textMismatch: text !== expectedText || (this.end !== null && this.end.data !== expectedText) ? 1 : 0,
      ended: this.end !== null ? 1 : 0,
      problems: this.problems,
    };
  }
}

// The first anomalies seen (for a bug report), if any.
function problems(verdicts) {
  const found = [];
  verdicts.forEach((v, receiver) => {
    for (const p of v.problems) if (found.length < 10) found.push({ receiver, ...p });
  });
  return found.length ? { problems: found } : {};
}

function listen(socket, handlers) {
  for (const [event, fn] of Object.entries(handlers)) socket.on(event, fn);
  return () => { for (const [event, fn] of Object.entries(handlers)) socket.off(event, fn); };
}

// ------------------------------------------------------------------ relay / fan-out
// One output of `tokens` tokens from `ext` to every socket in `receivers`,
// closed loop: at most `window` tokens sent and not yet delivered to every
// receiver. The CPU window is from the first token sent to the last one
// delivered (the STOP_PROCESSING / SERVER_STREAM_END that follow are outside).
function streamRun({ ext, extId, requester, receivers, room, tokens, window, timeoutMs }) {
  return new Promise((resolve, reject) => {
    const requestId = randomUUID();
    const outputId = randomUUID();
    const R = receivers.length;
    const counts = new Uint16Array(tokens);
    const lat = [];
    const expected = [];
    let sent = 0;
    let delivered = 0;
    let t0 = 0, t1 = 0, cpu0 = 0, cpu1 = 0, self0 = null, selfUsed = 0, busy0 = 0, other = null;
    let finished = false;
    let timedOut = false;

    const recv = receivers.map(() => new Receiver((n) => n));
    const offs = receivers.map((socket, idx) => {
      const r = recv[idx];
      r.onToken = (n, us) => {
        lat.push(us);
        if (n < tokens && ++counts[n] === R) {
          delivered += 1;
          if (delivered === tokens) allDelivered();
          else pump();
        }
      };
      return listen(socket, {
        SERVER_STREAM_DATA: (d) => { if (d.requestId === requestId) r.feed(d); },
        SERVER_STREAM_END: (d) => {
          if (d.requestId !== requestId) return;
          r.end = d;
          if (recv.every((x) => x.end)) complete();
        },
      });
    });

    function pump() {
      while (sent < tokens && sent - delivered < window) {
        expected.push(sendToken(ext, outputId, sent, sent === 0));
        sent += 1;
      }
    }
    function allDelivered() {
      t1 = nowUs();
      cpu1 = serverCpu();
      selfUsed = selfCpu(self0);
      const busy1 = machineBusy();
      other = otherCpu(busy0, busy1, cpu1 - cpu0, selfUsed, (t1 - t0) / 1e6);
      ext.emit("STOP_PROCESSING", {});
    }
    function complete() {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      offExt();
      for (const off of offs) off();
      if (!t1) { t1 = nowUs(); cpu1 = serverCpu(); selfUsed = selfCpu(self0); }
      const text = expected.join("");
      const v = recv.map((r) => r.verdict(tokens, text));
      const sum = (k) => v.reduce((a, x) => a + x[k], 0);
      const seconds = (t1 - t0) / 1e6;
      const events = recv.reduce((a, r) => a + r.events, 0);
      resolve({
        tokens, receivers: R, window, seconds: round(seconds, 3),
        tokens_per_s: round(delivered / seconds, 0),
        deliveries_per_s: round((delivered * R) / seconds, 0),
        server_cpu_us_per_token: round(((cpu1 - cpu0) * 1e6) / Math.max(delivered, 1), 1),
        server_cpu_us_per_delivery: round(((cpu1 - cpu0) * 1e6) / Math.max(delivered * R, 1), 2),
        server_cpu_util: round((cpu1 - cpu0) / seconds, 2),
        loadgen_cpu_util: round(selfUsed / seconds, 2),
        other_cpu_util: other,
        events_per_receiver: Math.round(events / R),
        chunks_per_event: round(recv.reduce((a, r) => a + r.chunks, 0) / Math.max(events, 1), 2),
        ...latencyStats(lat),
        delivered, lost: sum("lost"), reordered: sum("reordered"),
        text_mismatch: sum("textMismatch"), ended: sum("ended"), timed_out: timedOut,
        ...problems(v),
      });
    }

    const timer = setTimeout(() => {
      log(`run timed out: sent ${sent}, delivered ${delivered}/${tokens}`);
      timedOut = true;
      complete();
    }, timeoutMs);
    const onRequest = (req) => {
      if (req.requestId !== requestId) return;
      t0 = nowUs();
      cpu0 = serverCpu();
      self0 = process.cpuUsage();
      busy0 = machineBusy();
      pump();
    };
    ext.on("LLM_REQUEST", onRequest);
    const offExt = () => ext.off("LLM_REQUEST", onRequest);
    const request = { requestId, message: "bench", target: extId };
    if (room) request.targetRoom = room;
    ack(requester, "LLM_REQUEST", request).catch((err) => { clearTimeout(timer); reject(err); });
  });
}

async function relayLike(receiverCount, roomName) {
  const extId = `${cfg.creds.ext.clientId}-0`;
  const ext = await open(extAuth(extId));
  const results = [];
  let fixed = null;
  if (receiverCount > 1) {
    fixed = await openMany(receiverCount, (i) => clientAuth(`fan-${i}`), ["/llm"]);
    fixed.forEach((c, i) => { c.identity = `fan-${i}`; });
    await makeRoom(roomName, fixed);
    await sleep(500);
  }
  for (let run = 0; run < cfg.runs; run++) {
    await quiet();
    // relay: a fresh requester per run, so the context forwarded with the
    // request does not grow with the previous runs' answers
    let conns = fixed;
    if (!conns) {
      const identity = `relay-${run}-${randomUUID().slice(0, 8)}`;
      conns = [await open(clientAuth(identity))];
      await sleep(200);
    }
    const result = await streamRun({
      ext: ext.llm, extId, requester: conns[0].llm, receivers: conns.map((c) => c.llm),
      room: roomName, tokens: P.tokens, window: P.window, timeoutMs: P.timeoutS * 1000,
    });
    console.log(JSON.stringify({ run, ...result }));
    results.push(result);
    if (!fixed) conns[0].close();
    await sleep(300);
  }
  ext.close();
  if (fixed) for (const c of fixed) c.close();
  return results;
}

// ------------------------------------------------------------------ concurrency
// `streams` extensions each answer one client; every stream sends `rate`
// tokens/s (open loop, staggered) for `seconds`, then STOP_PROCESSING.
async function concurrency() {
  const S = P.streams;
  const extIds = Array.from({ length: S }, (_, i) => `${cfg.creds.ext.clientId}-${i}`);
  const exts = await openMany(S, (i) => extAuth(extIds[i]), ["/llm"]);
  const clients = await openMany(S, (i) => clientAuth(`conc-${i}`), ["/llm"]);
  log(`connected ${S} extensions and ${S} clients`);
  await sleep(1000);
  const perStream = Math.round(P.rate * P.seconds);
  const intervalUs = 1e6 / P.rate;
  const results = [];
  for (let run = 0; run < cfg.runs; run++) {
    await quiet();
    const lat = [];
    const lag = [];
    const st = extIds.map((extId, i) => ({
      i, extId, ext: exts[i].llm, client: clients[i].llm, requestId: randomUUID(), outputId: randomUUID(),
      sent: 0, expected: [], recv: new Receiver((n, us) => lat.push(us)), lastArrival: 0,
    }));
    let ended = 0;
    let resolveEnded;
    const allEnded = new Promise((r) => { resolveEnded = r; });
    const offs = [];
    const forwarded = [];
    for (const s of st) {
      offs.push(listen(s.client, {
        SERVER_STREAM_DATA: (d) => { if (d.requestId === s.requestId) { s.recv.feed(d); s.lastArrival = nowUs(); } },
        SERVER_STREAM_END: (d) => {
          if (d.requestId !== s.requestId || s.recv.end) return;
          s.recv.end = d;
          if (++ended === S) resolveEnded();
        },
      }));
      forwarded.push(new Promise((resolve) => {
        const off = listen(s.ext, { LLM_REQUEST: (req) => { if (req.requestId === s.requestId) { off(); resolve(); } } });
      }));
    }
    await Promise.all(st.map((s) => ack(s.client, "LLM_REQUEST", { requestId: s.requestId, message: "bench", target: s.extId })));
    await withTimeout(Promise.all(forwarded), 30000, "forwarded requests");

    // the measured window starts when the counters are read; the first
    // tokens are due 50 ms later (T0)
    const cpu0 = serverCpu();
    const self0 = process.cpuUsage();
    const busy0 = machineBusy();
    const tStart = nowUs();
    const T0 = tStart + 50000;
    let remaining = S;
    await new Promise((resolve) => {
      const tick = setInterval(() => {
        const now = nowUs();
        for (const s of st) {
          if (s.sent >= perStream) continue;
          const offset = (s.i * intervalUs) / S;
          let due = T0 + offset + s.sent * intervalUs;
          while (s.sent < perStream && due <= now) {
            lag.push(now - due);
            s.expected.push(sendToken(s.ext, s.outputId, s.sent, s.sent === 0, now));
            s.sent += 1;
            due += intervalUs;
          }
          if (s.sent === perStream) {
            s.ext.emit("STOP_PROCESSING", {});
            if (--remaining === 0) { clearInterval(tick); resolve(); }
          }
        }
      }, 1);
    });
    const tSent = nowUs();
    const drainTimedOut = await withTimeout(allEnded, P.drainS * 1000, "drain").then(() => false, () => true);
    const tDone = nowUs();
    const cpu1 = serverCpu();
    const selfUsed = selfCpu(self0);
    const busy1 = machineBusy();
    const windowS = (tDone - tStart) / 1e6;
    for (const off of offs) off();
    const v = st.map((s) => s.recv.verdict(perStream, s.expected.join("")));
    const sum = (k) => v.reduce((a, x) => a + x[k], 0);
    const delivered = st.reduce((a, s) => a + s.recv.tokens, 0);
    const lastArrival = Math.max(...st.map((s) => s.lastArrival));
    const sendSeconds = (tSent - T0) / 1e6;
    const lagSorted = sortedOf(lag);
    const result = {
      streams: S, rate: P.rate, seconds: P.seconds, sent: perStream * S, delivered,
      ...latencyStats(lat),
      lost: sum("lost"), reordered: sum("reordered"), text_mismatch: sum("textMismatch"), ended: sum("ended"),
      ...problems(v),
      drain_timed_out: drainTimedOut,
      chunks_per_event: round(st.reduce((a, s) => a + s.recv.chunks, 0) / Math.max(1, st.reduce((a, s) => a + s.recv.events, 0)), 2),
      send_rate_tokens_per_s: round((perStream * S) / sendSeconds, 0),
      drain_ms: round(Math.max(0, lastArrival - tSent) / 1000, 0),
      generator_lag_p99_ms: round(pct(lagSorted, 0.99) / 1000, 2),
      generator_lag_max_ms: round(pct(lagSorted, 1) / 1000, 2),
      server_cpu_us_per_token: round(((cpu1 - cpu0) * 1e6) / Math.max(delivered, 1), 1),
      server_cpu_util: round((cpu1 - cpu0) / windowS, 2),
      loadgen_cpu_util: round(selfUsed / windowS, 2),
      other_cpu_util: otherCpu(busy0, busy1, cpu1 - cpu0, selfUsed, windowS),
    };
    console.log(JSON.stringify({ run, ...result }));
    results.push(result);
    if (drainTimedOut) {
      // overloaded: its backlog would take minutes to work off, and another
      // run would say the same
      log(`run ${run}: not drained within ${P.drainS} s; no further runs`);
      break;
    }
    await sleep(1000);
  }
  for (const c of [...exts, ...clients]) c.close();
  return results;
}

// ------------------------------------------------------------------ idle connections
// `clients` clients, each one Engine.IO connection carrying `/` and `/llm`;
// RSS of the server before (after `warm` clients) and after.
async function idle() {
  const results = [];
  for (let run = 0; run < cfg.runs; run++) {
    const tag = randomUUID().slice(0, 6);
    const warm = await openMany(P.warm, (i) => clientAuth(`idle-w-${tag}-${i}`), ["/", "/llm"]);
    await sleep(1500);
    const rss0 = serverRss();
    const t0 = nowUs();
    const cpu0 = serverCpu();
    const busy0 = machineBusy();
    const self0 = process.cpuUsage();
    const conns = await openMany(P.clients, (i) => clientAuth(`idle-${tag}-${i}`), ["/", "/llm"], P.parallel);
    const connectS = (nowUs() - t0) / 1e6;
    const cpu1 = serverCpu();
    const other = otherCpu(busy0, machineBusy(), cpu1 - cpu0, selfCpu(self0), connectS);
    await sleep(P.settleS * 1000);
    const rss1 = serverRss();
    const alive = conns.filter((c) => c.llm.connected && c.sockets["/"].connected).length;
    const result = {
      clients: P.clients, alive, rss_before_mb: round(rss0 / 2 ** 20, 1), rss_after_mb: round(rss1 / 2 ** 20, 1),
      rss_kb_per_connection: round((rss1 - rss0) / 1024 / P.clients, 1),
      connect_seconds: round(connectS, 2),
      server_cpu_ms_per_client: round(((cpu1 - cpu0) * 1000) / P.clients, 2),
      other_cpu_util: other,
    };
    console.log(JSON.stringify({ run, ...result }));
    results.push(result);
    for (const c of [...warm, ...conns]) c.close();
    await sleep(1000);
  }
  return results;
}

// ------------------------------------------------------------------ history (newage only)
// GET_FULL_CONTEXT of P.room (prepared with P.messages messages): ack, first
// page, last page. Then P.requests LLM_REQUESTs into P.requestRoom (as many
// messages), as many into P.contextRoom (P.contextRoomMessages messages: a
// full context) and as many into empty rooms (rotating which goes first),
// answered by the extension with a non-stream message: latency to the
// extension, round trip, and server CPU per request (schedstat, ns
// resolution). Every request into an empty room goes to a room of its own,
// prepared empty (`${P.emptyRoom}-${n}`), so nothing is cleared while
// measuring.
async function history() {
  const extId = `${cfg.creds.ext.clientId}-0`;
  const ext = await open(extAuth(extId));
  const client = await open(clientAuth(P.member));
  const llm = client.llm;
  const forwardedAt = new Map();
  const contextSizes = [];
  ext.llm.on("LLM_REQUEST", (req) => {
    forwardedAt.set(req.requestId, nowUs());
    contextSizes.push(Array.isArray(req.context) ? req.context.length : 0);
    ext.llm.emit("message", { type: 0, data: `answer to ${req.requestId}`, source: "client", requestId: req.requestId, outputId: randomUUID() });
  });
  await sleep(500);

  async function fullContext(room) {
    let first = 0;
    let last = 0;
    let messages = 0;
    let pages = 0;
    let resolveLast;
    const lastPage = new Promise((r) => { resolveLast = r; });
    const off = listen(llm, {
      UPDATE_CONTEXT_PAGE: (p) => {
        if (p.roomName !== room) return;
        pages += 1;
        messages += p.contextPage.length;
        if (!first) first = nowUs();
        if (p.isLastPage) { last = nowUs(); resolveLast(); }
      },
    });
    const cpu0 = serverCpuPrecise();
    const t0 = nowUs();
    const reply = await ack(llm, "GET_FULL_CONTEXT", { roomName: room });
    const tAck = nowUs();
    await withTimeout(lastPage, 120000, "last context page");
    const cpu1 = serverCpuPrecise();
    off();
    return {
      total_messages: reply.totalMessages, pages, messages,
      ack_ms: round((tAck - t0) / 1000, 2), first_page_ms: round((first - t0) / 1000, 2),
      all_pages_ms: round((last - t0) / 1000, 1), server_cpu_ms: round((cpu1 - cpu0) * 1000, 1),
    };
  }

  const EMPTY = "empty";
  const emptyRooms = P.warmup + cfg.runs * P.requests; // prepared by bench/run.py
  let nextEmpty = 0;
  const roomFor = (kind) => {
    if (kind !== EMPTY) return kind;
    if (nextEmpty >= emptyRooms) throw new Error(`only ${emptyRooms} empty rooms prepared`);
    return `${P.emptyRoom}-${nextEmpty++}`;
  };

  // One request at a time, the same in every room: the CPU window runs from
  // before the request to P.pauseMs after the requester's
  // REQUEST_STATUS_UPDATE `completed` (the last event of a request), so the
  // request's trailing work is its own and the next request starts on an
  // idle server; the round trip ends at `completed`.
  async function requests(kind, count) {
    const toExt = [];
    const total = [];
    let cpu = 0;
    for (let i = 0; i < count; i++) {
      const room = roomFor(kind);
      const requestId = randomUUID();
      const done = new Promise((resolve) => {
        const off = listen(llm, {
          REQUEST_STATUS_UPDATE: (d) => {
            if (d.requestId === requestId && d.status === "completed") { off(); resolve(); }
          },
        });
      });
      const cpu0 = serverCpuPrecise();
      const t0 = nowUs();
      await ack(llm, "LLM_REQUEST", { requestId, message: `question ${i}`, target: extId, targetRoom: room });
      await withTimeout(done, 30000, "REQUEST_STATUS_UPDATE");
      const t1 = nowUs();
      await sleep(P.pauseMs);
      cpu += serverCpuPrecise() - cpu0;
      toExt.push(forwardedAt.get(requestId) - t0);
      total.push(t1 - t0);
    }
    const med = (a) => round(median(sortedOf(a)) / 1000, 2);
    return { requests: count, to_extension_ms: med(toExt), round_trip_ms: med(total),
             server_cpu_ms_per_request: round((cpu * 1000) / count, 3) };
  }

  // The ratios between the rooms are computed by bench/run.py from the
  // medians over the runs.
  const results = [];
  const kinds = [P.requestRoom, P.contextRoom, EMPTY];
  for (const kind of kinds) await requests(kind, P.warmup); // warm-up
  for (let run = 0; run < cfg.runs; run++) {
    const ctx = [];
    for (let k = 0; k < P.contextRepeats; k++) ctx.push(await fullContext(P.room));
    const req = {};
    for (let k = 0; k < kinds.length; k++) {
      const kind = kinds[(run + k) % kinds.length];
      req[kind] = await requests(kind, P.requests);
    }
    const ctxMedian = (k) => round(median(sortedOf(ctx.map((c) => c[k]))), 2);
    const result = {
      messages: ctx[0].total_messages, pages: ctx[0].pages, context_messages_received: ctx[0].messages,
      ack_ms: ctxMedian("ack_ms"), first_page_ms: ctxMedian("first_page_ms"), all_pages_ms: ctxMedian("all_pages_ms"),
      context_server_cpu_ms: ctxMedian("server_cpu_ms"),
      request_big: req[P.requestRoom], request_100: req[P.contextRoom], request_empty: req[EMPTY],
      forwarded_context_max: Math.max(...contextSizes),
    };
    console.log(JSON.stringify({ run, ...result }));
    results.push(result);
  }
  ext.close();
  client.close();
  return results;
}

// ------------------------------------------------------------------ main
const scenarios = {
  relay: () => relayLike(1, undefined),
  fanout: () => relayLike(P.clients, P.room),
  concurrency,
  idle,
  history,
};

try {
  const runs = await scenarios[cfg.scenario]();
  console.log(JSON.stringify({ ok: true, runs }));
  process.exit(0);
} catch (err) {
  console.log(JSON.stringify({ ok: false, error: String((err && err.stack) || err) }));
  process.exit(1);
}
