// A small helper for browser clients of a newage server (ES module, no build).
//
//   import { connect, MSG_TYPE, StreamAssembler } from '/dist/newage-client.js';
//   const assembler = new StreamAssembler();
//   const client = await connect({ clientId: 'web', key: '...' }, { on: {
//     '/rooms': { [MSG_TYPE.AVAILABLE_EXTENSIONS]: ({ extensions }) => console.log(extensions) },
//     '/llm': { [MSG_TYPE.SERVER_STREAM_DATA]: (chunk) => assembler.add(chunk) },
//   } });
//
// One Socket.IO connection carries every namespace. Listeners given in `on`
// ({namespace: {event: fn}}) are attached before connecting, so events the
// server sends at connect (AVAILABLE_EXTENSIONS on /rooms) are not lost. A
// refused namespace rejects `connect` with the server's message, and every
// socket it opened is closed.
import { Manager } from '/public/socket.io.esm.min.js';
import { MSG_TYPE, NAMESPACES } from '/lib/constants.js';

export { MSG_TYPE, NAMESPACES };

const DEFAULT_NAMESPACES = [NAMESPACES.DEFAULT, NAMESPACES.LLM, NAMESPACES.ROOMS];

export async function connect(auth, { url = location.origin, namespaces = DEFAULT_NAMESPACES, on = {} } = {}) {
  const manager = new Manager(url, { reconnection: true });
  const sockets = {};
  const close = () => Object.values(sockets).forEach((s) => s.disconnect());
  try {
    await Promise.all(namespaces.map((nsp) => new Promise((resolve, reject) => {
      const socket = manager.socket(nsp, { auth });
      sockets[nsp] = socket;
      for (const [event, fn] of Object.entries(on[nsp] || {})) socket.on(event, fn);
      socket.once('connect', resolve);
      socket.once('connect_error', (err) => reject(new Error(`${nsp}: ${err.message}`)));
    })));
  } catch (err) {
    close();
    throw err;
  }
  const call = (nsp, event, data) => sockets[nsp].timeout(10000).emitWithAck(event, data);
  return {
    manager,
    sockets,
    root: sockets[NAMESPACES.DEFAULT],
    llm: sockets[NAMESPACES.LLM],
    rooms: sockets[NAMESPACES.ROOMS],
    call,
    request: (message, extra = {}) =>
      call(NAMESPACES.LLM, MSG_TYPE.LLM_REQUEST, { requestId: crypto.randomUUID(), message, ...extra }),
    close,
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
