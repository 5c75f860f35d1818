// Entry point: login, navigation, live data loaders, views.

import { Connection } from './conn.js';
import { $, coalesce, debounce, text } from './dom.js';
import * as store from './store.js';
import { fail, toast } from './ui.js';
import dashboard from './views/dashboard.js';
import clients from './views/clients.js';
import rooms from './views/rooms.js';
import policy from './views/policy.js';
import traffic from './views/traffic.js';
import logs from './views/logs.js';

const AUTH_KEY = 'newage.monitor.auth'; // sessionStorage: {clientId, key, path}
const PREFS_KEY = 'newage.monitor.prefs'; // localStorage: {clientId, path}; never the key
const STATUS_EVERY = 3000;
const FULL_REFRESH_EVERY = 15000;
const VIEWS = [dashboard, clients, rooms, policy, traffic, logs];

let conn = null;
const timers = [];

// ------------------------------------------------------------------ storage
function savedAuth() {
  try {
    const value = JSON.parse(sessionStorage.getItem(AUTH_KEY) || 'null');
    return value && typeof value.clientId === 'string' && typeof value.key === 'string' ? value : null;
  } catch {
    return null;
  }
}

function prefs() {
  try { return JSON.parse(localStorage.getItem(PREFS_KEY) || '{}') || {}; } catch { return {}; }
}

// ------------------------------------------------------------------ login
function showLogin(error) {
  $('#app').hidden = true;
  $('#login').hidden = false;
  const p = prefs();
  const clientId = $('#login-client');
  if (!clientId.value) clientId.value = p.clientId || 'admin';
  if (!$('#login-path').value && p.path) $('#login-path').value = p.path;
  $('#login-key').value = '';
  const box = $('#login-error');
  text(box, error || '');
  box.hidden = !error;
  (clientId.value ? $('#login-key') : clientId).focus();
}

function setBusy(busy) {
  const button = $('#login-submit');
  button.disabled = busy;
  text(button, busy ? 'Signing in…' : 'Sign in');
}

async function signIn(auth) {
  setBusy(true);
  const next = new Connection(auth);
  wire(next);
  try {
    await next.open();
  } catch (err) {
    sessionStorage.removeItem(AUTH_KEY);
    setBusy(false);
    let message = err.message;
    if (message === 'Unauthorized') {
      message += ': the monitor needs an admin client (a trust entry of type monitor).';
    }
    showLogin(message);
    return;
  }
  conn = next;
  sessionStorage.setItem(AUTH_KEY, JSON.stringify(auth));
  localStorage.setItem(PREFS_KEY, JSON.stringify({ clientId: auth.clientId, path: auth.path || '' }));
  setBusy(false);
  startApp(auth.clientId);
}

function signOut() {
  sessionStorage.removeItem(AUTH_KEY);
  for (const t of timers) clearInterval(t);
  if (conn) conn.close();
  conn = null;
  // a fresh page drops every bit of state the views held
  window.location.reload();
}

// ------------------------------------------------------------------ live data
const ctx = {
  get conn() { return conn; },
  me: null,
  call: (ns, event, data, opts) => (conn ? conn.call(ns, event, data, opts) : Promise.reject(new Error('Not connected.'))),
  refresh: {},
};

async function loadStatus() {
  try {
    const ack = await ctx.call('/debug', 'SERVER_STATUS');
    const status = { ...ack.serverStatus, fetchedAt: performance.now() };
    const previous = store.get('status');
    store.set('status', status);
    store.set('debugMode', !!status.debugMode);
    if (previous && previous.rooms !== status.rooms) ctx.refresh.rooms();
  } catch (err) {
    if (conn && conn.state === 'connected') console.warn('SERVER_STATUS failed:', err.message);
  }
}

async function loadClients() {
  try {
    const ack = await ctx.call('/clients', 'GET_CLIENT_LIST');
    store.set('clients', ack.clients || []);
  } catch (err) {
    fail('Client list', err);
  }
}

async function loadRooms() {
  try {
    const ack = await ctx.call('/rooms', 'GET_ROOMS');
    store.set('rooms', ack.roomDetails || []);
  } catch (err) {
    fail('Rooms', err);
  }
}

const statusSoon = coalesce(loadStatus, 200);
const clientsLater = debounce(loadClients, 1000);
ctx.refresh.status = loadStatus;
ctx.refresh.clients = loadClients;
ctx.refresh.rooms = coalesce(loadRooms, 150);
ctx.refresh.roomsNow = loadRooms;

/** Pushed events that keep the shared state live (registered before connecting). */
function wire(c) {
  const clientsPush = (payload) => {
    store.set('clients', (payload && payload.clients) || []);
    // counters move with sessions; a session's later namespaces are not pushed
    statusSoon();
    clientsLater();
  };
  c.on('/clients', 'UPDATE_CONNECTED_CLIENTS', clientsPush);
  c.on('/clients', 'CONNECTED_CLIENTS_UPDATE', clientsPush);
  c.on('/rooms', 'ASSIGNMENTS_UPDATED', (payload) => {
    store.set('assignments', payload);
    statusSoon();
  });
  c.on('/debug', 'DEBUG_MODE_CHANGED', (payload) => store.set('debugMode', !!(payload && payload.debugMode)));
  for (const event of ['MEMBER_JOINED', 'MEMBER_LEFT', 'MEMBER_ROLE_CHANGED', 'ROOM_MODE_CHANGED', 'DELETE_ROOM']) {
    c.on('/rooms', event, () => ctx.refresh.rooms());
  }
  c.on('/rooms', 'WARNING', (payload) => toast((payload && payload.message) || 'Warning from the server', 'warn'));
  for (const ns of ['/rooms', '/clients', '/debug']) {
    c.on(ns, 'ERROR', (payload) => toast((payload && payload.message) || 'Server error', 'error'));
  }
  // mute bookkeeping (the member list has no mute field): room mutes are
  // announced to monitor-room as member status
  c.on('/llm', 'MEMBER_STATUS_UPDATE', (p) => {
    if (!p || !p.identity) return;
    const key = store.muteKey(p.identity, p.roomName);
    if (p.status === 'muted') {
      if (!store.mutes.has(key)) store.mutes.set(key, { mutedUntil: null });
      store.set('mutes', store.mutes);
    } else if (p.status === 'idle' && store.mutes.has(key)) {
      store.mutes.delete(key);
      store.set('mutes', store.mutes);
    }
  });
  // joins and leaves in any room arrive as system messages (monitors hear every room)
  c.on('/llm', 'NEW_MESSAGE', (p) => {
    if (p && p.message && p.message.isSystem) ctx.refresh.rooms();
  });
  c.addEventListener('state', (e) => showState(e.detail));
  c.addEventListener('reconnected', (e) => {
    if (e.detail.ns === '/clients') loadClients();
    if (e.detail.ns === '/rooms') loadRooms();
    if (e.detail.ns === '/debug') loadStatus();
  });
  for (const view of VIEWS) if (view.wire) view.wire(c, ctx);
}

function showState({ state, message }) {
  const pill = $('#conn-state');
  const labels = {
    connected: 'connected', reconnecting: 'reconnecting…', connecting: 'connecting…',
    kicked: 'disconnected', refused: 'refused', closed: 'signed out',
  };
  pill.dataset.state = state;
  text(pill, labels[state] || state);
  store.set('connState', state);
  $('#views').classList.toggle('stale', state !== 'connected');
  const banner = $('#banner');
  if (state === 'kicked' || state === 'refused') {
    const why = state === 'refused'
      ? `The server refused the connection: ${message}`
      : 'The server closed this connection (key revoked, trust withdrawn or disconnected by an admin).';
    const again = document.createElement('button');
    again.type = 'button';
    again.textContent = 'Sign in again';
    again.addEventListener('click', signOut);
    banner.replaceChildren(document.createTextNode(`${why} `), again);
    banner.hidden = false;
  } else if (state === 'connected') {
    banner.hidden = true;
  }
}

// ------------------------------------------------------------------ navigation
function currentView() {
  const name = window.location.hash.replace(/^#/, '');
  return VIEWS.some((v) => v.id === name) ? name : 'dashboard';
}

function route() {
  const name = currentView();
  for (const view of VIEWS) {
    const active = view.id === name;
    view.section.hidden = !active;
    if (active && view.onShow) view.onShow();
  }
  for (const link of document.querySelectorAll('#nav a')) {
    if (link.dataset.view === name) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  setNavOpen(false);
}

function setNavOpen(open) {
  $('#app').classList.toggle('nav-open', open);
  $('#nav-toggle').setAttribute('aria-expanded', String(open));
}

function startApp(clientId) {
  ctx.me = clientId;
  text($('#whoami'), clientId);
  $('#login').hidden = true;
  $('#app').hidden = false;
  const views = $('#views');
  views.replaceChildren();
  for (const view of VIEWS) {
    view.section = view.create(ctx);
    view.section.id = `view-${view.id}`;
    view.section.classList.add('view');
    view.section.hidden = true;
    views.appendChild(view.section);
  }
  window.addEventListener('hashchange', route);
  route();
  loadStatus();
  loadClients();
  loadRooms();
  timers.push(setInterval(loadStatus, STATUS_EVERY));
  timers.push(setInterval(() => { loadRooms(); loadClients(); }, FULL_REFRESH_EVERY));
  store.watch('debugMode', (on) => { $('#debug-badge').hidden = !on; });
}

// ------------------------------------------------------------------ boot
function boot() {
  $('#login-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const clientId = $('#login-client').value.trim();
    const key = $('#login-key').value.trim();
    const path = $('#login-path').value.trim();
    if (!clientId || !key) {
      showLogin(!clientId ? 'Enter the admin clientId.' : 'Enter the key.');
      return;
    }
    signIn({ clientId, key, path });
  });
  $('#logout').addEventListener('click', signOut);
  $('#nav-toggle').addEventListener('click', () => setNavOpen(!$('#app').classList.contains('nav-open')));
  const auth = savedAuth();
  if (auth) {
    $('#login-client').value = auth.clientId;
    showLogin();
    signIn(auth);
  } else {
    showLogin();
  }
}

boot();
