// newage extension for SillyTavern. SPDX-License-Identifier: AGPL-3.0-or-later
// Login and the /llm socket: key-less bootstrap, key issuance
// (IDENTIFY_SILLYTAVERN), reconnection with backoff, a fresh login when the
// server refuses the saved key. When the /llm socket goes away the server
// fails every request it gave this extension, so the local jobs go too.

import { io } from './lib/socket.io.esm.min.js';

const CALL_TIMEOUT = 10000;
const BACKOFF_MIN = 1000;
const BACKOFF_MAX = 30000;

export class Connection {
    /**
     * @param {object} settings the live settings (serverUrl, clientId, password, key)
     * @param {object} hooks {onRequest(data), onCancel(data), onChange(), saveKey(),
     *     onLost() -> how many requests were dropped}
     */
    constructor(settings, hooks) {
        this.settings = settings;
        this.hooks = hooks;
        this.llm = null;
        this.wanted = false;
        this.state = 'disconnected'; // disconnected | connecting | connected
        this.lastError = '';
        this.dropNote = ''; // shown until the next connect has been seen
        this.backoff = BACKOFF_MIN;
        this.timer = null;
        this.generation = 0; // a newer start() or stop() makes older attempts moot
    }

    get connected() {
        return this.state === 'connected';
    }

    start() {
        this.stop();
        this.wanted = true;
        this.backoff = BACKOFF_MIN;
        this.login();
    }

    stop() {
        this.wanted = false;
        this.generation += 1;
        clearTimeout(this.timer);
        const wasConnected = !!this.llm?.connected;
        this.closeLlm();
        this.set('disconnected', wasConnected ? this.lost() : undefined);
    }

    /** Send on /llm; dropped (and said so) while disconnected. */
    send(event, payload) {
        if (!this.llm || !this.llm.connected) {
            console.warn(`[newage] not connected, ${event} dropped`);
            return false;
        }
        this.llm.emit(event, payload);
        return true;
    }

    // ------------------------------------------------------------------ internals
    set(state, error) {
        this.state = state;
        if (error !== undefined) this.lastError = error;
        this.hooks.onChange();
    }

    base() {
        const { clientId } = this.settings;
        const auth = { clientType: 'SillyTavern', clientId, desc: `SillyTavern at ${location.origin}` };
        if (this.settings.password) auth.password = this.settings.password;
        return auth;
    }

    url(namespace) {
        return this.settings.serverUrl.replace(/\/+$/, '') + namespace;
    }

    /** The socket is gone: drop the local jobs; the note for the panel. */
    lost() {
        const count = this.hooks.onLost();
        this.dropNote = count
            ? `${count} request${count === 1 ? '' : 's'} dropped (the server failed them at the disconnect).`
            : '';
        return this.dropNote;
    }

    closeLlm() {
        if (this.llm) {
            this.llm.removeAllListeners();
            this.llm.disconnect();
            this.llm = null;
        }
    }

    retryLater(error) {
        this.closeLlm();
        this.set('disconnected', error);
        if (!this.wanted) return;
        const delay = this.backoff;
        this.backoff = Math.min(this.backoff * 2, BACKOFF_MAX);
        clearTimeout(this.timer);
        this.timer = setTimeout(() => this.login(), delay);
    }

    async login() {
        const generation = this.generation;
        this.set('connecting');
        if (!this.settings.key) {
            try {
                const key = await this.fetchKey();
                if (generation !== this.generation) return;
                this.settings.key = key;
                this.hooks.saveKey();
            } catch (err) {
                if (generation === this.generation) this.retryLater(String(err.message || err));
                return;
            }
        }
        this.openLlm();
    }

    /** A one-shot socket: resolves when connected, rejects with the refusal. */
    open(namespace, auth) {
        const socket = io(this.url(namespace), {
            auth, forceNew: true, reconnection: false, timeout: CALL_TIMEOUT,
        });
        return new Promise((resolve, reject) => {
            socket.once('connect', () => resolve(socket));
            socket.once('connect_error', (err) => {
                socket.disconnect();
                reject(new Error(err.data?.message || err.message || 'Cannot connect.'));
            });
        });
    }

    /** The extension's start without a key, then a key from the server. */
    async fetchKey() {
        const { clientId, password } = this.settings;
        const boot = await this.open('/function_call', this.base());
        let remember;
        try {
            remember = await boot.timeout(CALL_TIMEOUT).emitWithAck('FUNCTION_CALL', {
                requestId: 'checkRememberMe', target: 'server', functionName: 'readJsonFromFile',
                args: [`./settings/${clientId}-settings.json`],
            });
        } finally {
            boot.disconnect();
        }
        if (!remember?.success || remember.result?.success === false) {
            throw new Error(remember?.error?.message || remember?.message || 'Not trusted by the server.');
        }
        const st = await this.open('/sillytavern', { ...this.base(), key: 'getKey' });
        let ack;
        try {
            const request = { clientId };
            if (password) request.password = password;
            ack = await st.timeout(CALL_TIMEOUT).emitWithAck('IDENTIFY_SILLYTAVERN', request);
        } finally {
            st.disconnect();
        }
        if (!ack || ack.status === 'error' || typeof ack.key !== 'string') {
            throw new Error(ack?.message || 'No key issued.');
        }
        return ack.key;
    }

    openLlm() {
        this.closeLlm();
        const llm = io(this.url('/llm'), {
            forceNew: true,
            // read at every (re)connect: a fresh login replaces the key
            auth: (cb) => cb({ ...this.base(), key: this.settings.key }),
            reconnection: true,
            reconnectionDelay: BACKOFF_MIN,
            reconnectionDelayMax: BACKOFF_MAX,
        });
        this.llm = llm;
        llm.on('connect', () => {
            this.backoff = BACKOFF_MIN;
            this.set('connected', this.dropNote);
            this.dropNote = '';
        });
        llm.on('disconnect', (reason) => {
            const note = this.lost();
            if (reason === 'io server disconnect') {
                // closed by the server (key revoked, trust withdrawn): log in afresh
                this.settings.key = null;
                this.hooks.saveKey();
                this.retryLater(`Disconnected by the server. ${note}`.trim());
            } else if (reason !== 'io client disconnect') {
                this.set('connecting', `Connection lost (${reason}); reconnecting. ${note}`.trim());
            }
        });
        llm.on('connect_error', (err) => {
            if (!err.data) {
                // the server is unreachable: the client retries with backoff itself
                this.set('connecting', `Server unreachable (${err.message}); retrying. ${this.dropNote}`.trim());
                return;
            }
            // a refusal of the namespace: the client does not retry it by itself
            const message = err.data.message || err.message;
            if (message === 'Invalid key.' || err.data.code === 'unauthenticated') {
                this.settings.key = null;
                this.hooks.saveKey();
                if (this.backoff === BACKOFF_MIN) {
                    // the saved key is stale (another data directory, revoked): at once
                    this.backoff *= 2;
                    this.closeLlm();
                    this.login();
                    return;
                }
            }
            this.retryLater(message);
        });
        llm.on('LLM_REQUEST', (data) => this.hooks.onRequest(data));
        llm.on('CANCEL_REQUEST', (data) => this.hooks.onCancel(data));
        // the server's heartbeat: answered by this page's script, so a stuck
        // page stops getting requests (Engine.IO pings would still be answered)
        llm.on('PING_EXTENSION', (_data, ack) => {
            if (typeof ack === 'function') ack({ status: 'ok' });
        });
    }
}
