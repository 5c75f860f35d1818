// A client that lost its connection picks a stream up again with the
// official socket.io-client: RESUME_STREAM, then the replay and the live
// rest, applying each SERVER_STREAM_DATA only when its seq is the next one.
// Usage: node resume.mjs <url> <clientId> <key> <requestId> <afterSeq>
// Prints the ack as one line, then {text, seqs, end} when the stream ends.
import { io } from "socket.io-client";

const [url, clientId, key, requestId, afterSeq] = process.argv.slice(2);
const socket = io(url + "/llm", { auth: { clientId, key }, transports: ["websocket"], reconnection: false });
let last = Number(afterSeq);
let text = "";
const seqs = [];

socket.on("SERVER_STREAM_DATA", (p) => {
  if (p.requestId !== requestId) return;
  seqs.push(p.seq);
  if (p.seq === last + 1) {
    last = p.seq;
    text += p.data;
  }
});
socket.on("SERVER_STREAM_END", (p) => {
  if (p.requestId !== requestId) return;
  console.log(JSON.stringify({ text, seqs, end: p }));
  socket.close();
});
socket.on("connect", async () => {
  const ack = await socket.timeout(10000).emitWithAck("RESUME_STREAM", { requestId, afterSeq: last });
  console.log(JSON.stringify({ ack }));
});
socket.on("connect_error", (err) => {
  console.log(JSON.stringify({ error: err.message }));
  process.exit(1);
});
