// Entry point: login, navigation, live data loaders, views.

import { MSG_TYPE } from '/lib/constants.js';
import { Connection } from './conn.js';
import { $, coalesce, fill, h, text } from './dom.js';
import * as store from './store.js';
import { attempt, toast } from './ui.js';
import dashboard from './views/dashboard.js';
import clients from './views/clients.js';
import rooms from './views/rooms.js';
import policy from './views/policy.js';
import traffic from './views/traffic.js';
import requests from './views/requests.js';
import trends from './views/trends.js';
import events from './views/events.js';
import logs from './views/logs.js';

const AUTH_KEY = 'newage.monitor.auth'; // sessionStorage: {clientId, key, path}
const PREFS_KEY = 'newage.monitor.prefs'; // localStorage: {clientId, path}; never the key
const THEME_KEY = 'newage.monitor.theme'; // localStorage: 'light' | 'dark' | absent (the system's)
const STATUS_EVERY = 3000;
const VIEWS = [dashboard, clients, rooms, policy, traffic, requests, trends, events, logs];

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
  me: null,
  call: (ns, event, data, opts) => (conn ? conn.call(ns, event, data, opts) : Promise.reject(new Error('Not connected.'))),
  refresh: {},
};

async function loadStatus() {
  try {
    const ack = await ctx.call('/debug', MSG_TYPE.SERVER_STATUS);
    const status = { ...ack.serverStatus, fetchedAt: performance.now() };
    const previous = store.get('status');
    store.set('status', status);
    store.set('debugMode', !!status.debugMode);
    if (previous && previous.rooms !== status.rooms) ctx.refresh.rooms();
  } catch (err) {
    if (conn && conn.state === 'connected') console.warn('SERVER_STATUS failed:', err.message);
  }
}

const loadClients = () => attempt('Client list', async () => {
  const ack = await ctx.call('/clients', MSG_TYPE.GET_CLIENT_LIST);
  store.set('clients', ack.clients || []);
});

const loadRooms = () => attempt('Rooms', async () => {
  const ack = await ctx.call('/rooms', MSG_TYPE.GET_ROOMS);
  store.set('rooms', ack.roomDetails || []);
});

const statusSoon = coalesce(loadStatus, 200);
ctx.refresh.status = loadStatus;
ctx.refresh.rooms = coalesce(loadRooms, 150);
ctx.refresh.roomsNow = loadRooms;

/** Pushed events that keep the shared state live (registered before connecting). */
function wire(c) {
  // the server pushes the whole list on every namespace connect and disconnect
  // of a present identity (the same payload also goes out as UPDATE_CONNECTED_CLIENTS)
  c.on('/clients', MSG_TYPE.CONNECTED_CLIENTS_UPDATE, (payload) => {
    store.set('clients', (payload && payload.clients) || []);
    statusSoon(); // the session and socket counters move with it
  });
  c.on('/rooms', MSG_TYPE.ASSIGNMENTS_UPDATED, (payload) => {
    store.set('assignments', payload);
    statusSoon();
  });
  c.on('/debug', MSG_TYPE.DEBUG_MODE_CHANGED, (payload) => store.set('debugMode', !!(payload && payload.debugMode)));
  const roomEvents = [MSG_TYPE.ROOM_CREATED, MSG_TYPE.MEMBER_JOINED, MSG_TYPE.MEMBER_LEFT,
    MSG_TYPE.MEMBER_ROLE_CHANGED, MSG_TYPE.ROOM_MODE_CHANGED, MSG_TYPE.DELETE_ROOM];
  for (const event of roomEvents) c.on('/rooms', event, () => ctx.refresh.rooms());
  c.on('/rooms', MSG_TYPE.WARNING, (payload) => toast((payload && payload.message) || 'Warning from the server', 'warn'));
  // joins, leaves, mutes and unmutes in a room arrive as its system messages
  // (every room's, while the server mirrors rooms to monitors: mirrorToMonitors);
  // the rooms reload, and with them the open room's member list
  c.on('/llm', MSG_TYPE.NEW_MESSAGE, (p) => {
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
    fill(banner, `${why} `, h('button', { type: 'button', on: { click: signOut } }, 'Sign in again'));
    banner.hidden = false;
  } else if (state === 'connected') {
    banner.hidden = true;
    // what the toasts said belongs to before the connection dropped
    if (wasDown) $('#toasts').replaceChildren();
  }
  wasDown = state !== 'connected';
}
let wasDown = false;

// ------------------------------------------------------------------ theme
function applyTheme(theme) {
  if (theme === 'light' || theme === 'dark') document.documentElement.dataset.theme = theme;
  else delete document.documentElement.dataset.theme;
  const dark = theme ? theme === 'dark' : window.matchMedia('(prefers-color-scheme: dark)').matches;
  const button = $('#theme-toggle');
  text(button, dark ? 'Light' : 'Dark');
  button.setAttribute('aria-label', dark ? 'Switch to the light theme' : 'Switch to the dark theme');
  button.dataset.theme = dark ? 'dark' : 'light';
}

function toggleTheme() {
  const next = $('#theme-toggle').dataset.theme === 'dark' ? 'light' : 'dark';
  localStorage.setItem(THEME_KEY, next);
  applyTheme(next);
}

// ------------------------------------------------------------------ navigation
/** `#/rooms/<name>` (deep link) or `#rooms`: the view and its argument. */
function currentView() {
  const [name, ...rest] = window.location.hash.replace(/^#\/?/, '').split('/');
  let arg = rest.length ? rest.join('/') : null;
  try { arg = arg === null ? null : decodeURIComponent(arg); } catch { arg = null; }
  return VIEWS.some((v) => v.id === name) ? { name, arg } : { name: 'dashboard', arg: null };
}

let shown = null;
function route() {
  const { name, arg } = currentView();
  for (const view of VIEWS) {
    const active = view.id === name;
    view.section.hidden = !active;
    if (active) view.section.onShow?.(arg);
  }
  if (shown !== name) window.scrollTo(0, 0); // a view opens at its top
  shown = name;
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
  // no periodic full reload: the server pushes client, room and assignment
  // changes, and a reconnect reloads what it may have missed
  timers.push(setInterval(loadStatus, STATUS_EVERY));
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
  $('#theme-toggle').addEventListener('click', toggleTheme);
  applyTheme(localStorage.getItem(THEME_KEY));
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
