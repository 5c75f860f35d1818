// A small helper for browser clients of a newage server (ES module, no build).
//
//   import { connect, StreamAssembler } from '/dist/newage-client.js';
//   const client = await connect({ clientId: 'web', key: '...' });
//   client.llm.on('SERVER_STREAM_DATA', (chunk) => assembler.add(chunk));
//
// One Socket.IO connection carries every namespace; a refused namespace
// rejects `connect` with the server's message.
import { Manager } from '/public/socket.io.esm.min.js';
import { MSG_TYPE, NAMESPACES } from '/lib/constants.js';

export { MSG_TYPE, NAMESPACES };

export async function connect(auth, { url = location.origin, namespaces = ['/', '/llm', '/rooms'] } = {}) {
  const manager = new Manager(url, { reconnection: true });
  const sockets = {};
  await Promise.all(namespaces.map((nsp) => new Promise((resolve, reject) => {
    const socket = manager.socket(nsp, { auth });
    sockets[nsp] = socket;
    socket.once('connect', resolve);
    socket.once('connect_error', (err) => reject(new Error(`${nsp}: ${err.message}`)));
  })));
  const call = (nsp, event, data) => sockets[nsp].timeout(10000).emitWithAck(event, data);
  return {
    manager,
    sockets,
    root: sockets['/'],
    llm: sockets['/llm'],
    rooms: sockets['/rooms'],
    call,
    request: (message, extra = {}) =>
      call('/llm', MSG_TYPE.LLM_REQUEST, { requestId: crypto.randomUUID(), message, ...extra }),
    close: () => Object.values(sockets).forEach((s) => s.disconnect()),
  };
}

// Rebuilds each response from SERVER_STREAM_DATA in order (`seq` per
// outputId); SERVER_STREAM_END carries the whole text and wins.
export class StreamAssembler {
  constructor() { this.outputs = new Map(); }
  add(chunk) {
    const text = (this.outputs.get(chunk.outputId) || '') + chunk.data;
    this.outputs.set(chunk.outputId, text);
    return text;
  }
  end(done) {
    this.outputs.set(done.outputId, done.data);
    return done.data;
  }
}
