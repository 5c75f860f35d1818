// One Socket.IO Manager (one Engine.IO connection) carrying every namespace
// the page needs, each authenticated with the admin's clientId and key.
// The key lives in this object and in sessionStorage only: never in a URL,
// never logged.

import { Manager } from '/public/socket.io.esm.min.js';
import { CLIENT_KIND, NAMESPACES } from '/lib/constants.js';

const { DEBUG, CLIENTS, ROOMS, LLM } = NAMESPACES;
const PAGE_NAMESPACES = [DEBUG, CLIENTS, ROOMS, LLM];
const CONNECT_TIMEOUT = 10000;
const ACK_TIMEOUT = 15000;

export class AckError extends Error {
  constructor(message, code, ack) {
    super(message || 'The server refused the request.');
    this.name = 'AckError';
    this.code = code;
    this.ack = ack;
  }
}

/** The server's own message for a refused namespace connect. */
function refusal(err) {
  if (!err) return 'Connection failed.';
  const data = err.data;
  if (data && typeof data.message === 'string') return data.message;
  if (err.message === 'xhr poll error' || err.message === 'websocket error' || err.message === 'timeout') {
    return 'Cannot reach the server.';
  }
  return err.message || 'Connection failed.';
}

export class Connection extends EventTarget {
  constructor({ clientId, key, path }) {
    super();
    this.clientId = clientId;
    this.path = path || '/socket.io/';
    this.sockets = {};
    this.handlers = []; // [ns, event, fn], attached as each socket is made
    this.state = 'connecting';
    this.closed = false;
    // kept in a closure-like private field so a stray JSON.stringify(conn) cannot leak it
    this.#key = key;
  }

  #key;

  #auth() {
    return { clientType: CLIENT_KIND.MONITOR, clientId: this.clientId, key: this.#key, desc: 'newage monitor page' };
  }

  #setState(state, detail = {}) {
    this.state = state;
    this.dispatchEvent(new CustomEvent('state', { detail: { state, ...detail } }));
  }

  /** Connect /debug first (it checks admin rights and the key once), then the rest. */
  async open() {
    this.manager = new Manager(window.location.origin, {
      path: this.path,
      transports: ['websocket', 'polling'],
      tryAllTransports: true,
      reconnectionDelay: 500,
      reconnectionDelayMax: 5000,
      timeout: CONNECT_TIMEOUT,
    });
    this.manager.on('reconnect_attempt', () => this.#setState('reconnecting'));
    this.manager.on('reconnect', () => this.#setState('connected'));
    this.manager.on('error', () => { if (this.state === 'connected') this.#setState('reconnecting'); });
    try {
      await this.#openNamespace(DEBUG);
      await Promise.all(PAGE_NAMESPACES.filter((n) => n !== DEBUG).map((n) => this.#openNamespace(n)));
    } catch (err) {
      this.close();
      throw err;
    }
    for (const [ns, socket] of Object.entries(this.sockets)) this.#watch(ns, socket);
    this.#setState('connected');
  }

  #openNamespace(ns) {
    return new Promise((resolve, reject) => {
      const socket = this.manager.socket(ns, { auth: this.#auth() });
      this.sockets[ns] = socket;
      // before CONNECT completes: pushes sent right after connecting are not lost
      for (const [n, event, fn] of this.handlers) if (n === ns) socket.on(event, fn);
      const timer = setTimeout(() => { cleanup(); reject(new Error('The server did not answer in time.')); }, CONNECT_TIMEOUT);
      const onConnect = () => { cleanup(); resolve(socket); };
      const onError = (err) => {
        // a refusal from the server (auth) is final; a transport error retries
        if (err && err.data) { cleanup(); reject(new Error(refusal(err))); }
        else if (!socket.active) { cleanup(); reject(new Error(refusal(err))); }
      };
      const cleanup = () => {
        clearTimeout(timer);
        socket.off('connect', onConnect);
        socket.off('connect_error', onError);
      };
      socket.on('connect', onConnect);
      socket.on('connect_error', onError);
      if (!socket.connected && !socket.active) socket.connect();
    });
  }

  #watch(ns, socket) {
    socket.on('connect', () => {
      this.dispatchEvent(new CustomEvent('reconnected', { detail: { ns } }));
      if (Object.values(this.sockets).every((s) => s.connected)) this.#setState('connected');
    });
    socket.on('disconnect', (reason) => {
      if (this.closed) return;
      if (reason === 'io server disconnect') {
        // the server closed us (key revoked, trust withdrawn, admin disconnect): no auto-reconnect
        this.#setState('kicked', { ns });
      } else {
        this.#setState('reconnecting', { reason });
      }
    });
    socket.on('connect_error', (err) => {
      if (this.closed) return;
      if (err && err.data) this.#setState('refused', { message: refusal(err) });
    });
  }

  /** Listen to a pushed event; may be called before open(). */
  on(ns, event, handler) {
    this.handlers.push([ns, event, handler]);
    if (this.sockets[ns]) this.sockets[ns].on(event, handler);
  }

  /** Emit with an ack; resolves the ack, rejects with the server's message. */
  call(ns, event, data, { timeout = ACK_TIMEOUT } = {}) {
    const socket = this.sockets[ns];
    if (!socket || !socket.connected) {
      return Promise.reject(new AckError('Not connected to the server.', 'unavailable'));
    }
    return new Promise((resolve, reject) => {
      socket.timeout(timeout).emit(event, data === undefined ? {} : data, (err, ack) => {
        if (err) {
          reject(new AckError(`No answer from the server to ${event}.`, 'timeout'));
        } else if (ack && typeof ack === 'object' && !Array.isArray(ack)
          && (ack.status === 'error' || ack.success === false)) {
          reject(new AckError(ack.message, ack.code, ack));
        } else {
          resolve(ack);
        }
      });
    });
  }

  close() {
    this.closed = true;
    for (const socket of Object.values(this.sockets)) {
      socket.removeAllListeners();
      socket.disconnect();
    }
    if (this.manager) this.manager.removeAllListeners();
    this.#setState('closed');
  }
}
