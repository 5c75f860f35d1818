// Dashboard: server status, connections, connected extensions and clients.

import { badge, bytes, duration, fill, h, table, text, time } from '../dom.js';
import * as store from '../store.js';
import { describe, isExtension, kindBadge, roomsOf } from '../model.js';

function card(label, valueEl, sub) {
  return h('div', { class: 'card stat' }, h('div', { class: 'stat-label' }, label), valueEl, sub || null);
}

function create(ctx) {
  const uptime = h('div', { class: 'stat-value', id: 'dash-uptime' }, '–');
  const started = h('div', { class: 'stat-sub' });
  const sessions = h('div', { class: 'stat-value', id: 'dash-sessions' }, '–');
  const sessionsSub = h('div', { class: 'stat-sub' }, 'identities present');
  const roomsCount = h('div', { class: 'stat-value', id: 'dash-rooms' }, '–');
  const requests = h('div', { class: 'stat-value', id: 'dash-requests' }, '–');
  const streams = h('div', { class: 'stat-value', id: 'dash-streams' }, '–');
  const memory = h('div', { class: 'stat-value', id: 'dash-memory' }, '–');
  const memoryPeak = h('div', { class: 'stat-sub' });
  const serverState = h('span', { class: 'pill', dataset: { state: 'connecting' } }, 'waiting');
  const details = h('dl', { class: 'kv' });
  const namespaces = h('div');
  const extensions = h('div', { id: 'dash-extensions' });
  const clients = h('div', { id: 'dash-clients' });

  const section = h('section', { 'aria-labelledby': 'dash-title' },
    h('div', { class: 'view-head' }, h('h1', { id: 'dash-title' }, 'Dashboard'), serverState),
    h('div', { class: 'stats' },
      card('Uptime', uptime, started),
      card('Sessions', sessions, sessionsSub),
      card('Rooms', roomsCount),
      card('Requests', requests, h('div', { class: 'stat-sub' }, 'in flight')),
      card('Streams', streams, h('div', { class: 'stat-sub' }, 'in flight')),
      card('Memory (RSS)', memory, memoryPeak)),
    h('div', { class: 'grid-2' },
      h('div', { class: 'card' }, h('h2', null, 'Server'), details),
      h('div', { class: 'card' }, h('h2', null, 'Connections per namespace'), namespaces)),
    h('div', { class: 'card' }, h('h2', null, 'Connected extensions'), extensions),
    h('div', { class: 'card' }, h('h2', null, 'Connected clients'), clients));

  let last = null;
  const showServerState = () => {
    const live = store.get('connState') === 'connected';
    serverState.dataset.state = !last ? 'connecting' : live ? 'connected' : 'closed';
    text(serverState, !last ? 'waiting' : live ? 'server up' : 'no live data');
  };
  store.watch('connState', showServerState);
  const tick = () => {
    if (!last || store.get('connState') !== 'connected') return;
    const elapsed = (performance.now() - last.fetchedAt) / 1000;
    text(uptime, duration((last.uptimeSeconds || 0) + elapsed));
  };
  setInterval(tick, 1000);

  store.watch('status', (s) => {
    last = s;
    tick();
    text(started, `since ${s.startTime || '–'}`);
    text(sessions, s.sessions ?? '–');
    text(roomsCount, s.rooms ?? '–');
    text(requests, s.requestsInFlight ?? '–');
    text(streams, s.streamsInFlight ?? '–');
    text(memory, bytes(s.memory && s.memory.rssBytes));
    text(memoryPeak, s.memory && s.memory.peakRssBytes ? `peak ${bytes(s.memory.peakRssBytes)}` : '');
    showServerState();
    const yesNo = (v) => (v ? 'on' : 'off');
    fill(details,
      h('dt', null, 'Version'), h('dd', null, s.version ?? '–'),
      h('dt', null, 'Address'), h('dd', null, `${s.serverAddress ?? '–'}:${s.serverPort ?? '–'}`),
      h('dt', null, 'Network safe'), h('dd', null, yesNo(s.networkSafe)),
      h('dt', null, 'Debug mode'), h('dd', null, yesNo(s.debugMode)),
      h('dt', null, 'Log level'), h('dd', null, s.logLevel ?? '–'),
      h('dt', null, 'Started'), h('dd', null, s.startTime ?? '–'));
    const conns = Object.entries(s.connections || {});
    const max = Math.max(1, ...conns.map(([, n]) => n));
    fill(namespaces, table(
      [{ label: 'Namespace' }, { label: 'Sockets', class: 'num' }, { label: '', class: 'bar-col' }],
      conns.map(([ns, n]) => h('tr', null,
        h('td', null, h('code', null, ns)),
        h('td', { class: 'num' }, n),
        h('td', { class: 'bar-col' }, h('meter', { min: 0, max, value: n, 'aria-label': `${ns} sockets` })))),
      { empty: 'No namespaces reported.' }));
  });

  const renderClients = () => {
    const list = store.get('clients') || [];
    const rows = (items) => items.map((c) => {
      const rooms = roomsOf(c.identity);
      return h('tr', { dataset: { identity: c.identity } },
        h('td', null, h('span', { class: 'ident' }, c.identity),
          c.identity === ctx.me ? badge('you', 'ok') : null),
        h('td', null, kindBadge(c), ' ', h('span', { class: 'muted' }, c.clientType ?? '')),
        h('td', { class: 'desc' }, describe(c)),
        h('td', null, rooms.length ? rooms.map((r) => h('span', { class: 'chip', title: r }, r)) : h('span', { class: 'muted' }, '–')),
        h('td', { class: 'nowrap' }, time(c.connectedAt)),
        h('td', null, (c.namespaces || []).map((n) => h('code', { class: 'ns' }, n))));
    });
    const cols = [{ label: 'Identity' }, { label: 'Type' }, { label: 'Description' }, { label: 'Rooms' },
      { label: 'Connected' }, { label: 'Namespaces' }];
    fill(extensions, table(cols, rows(list.filter(isExtension)),
      { empty: 'No extension connected.', class: 'data' }));
    fill(clients, table(cols, rows(list.filter((c) => !isExtension(c))),
      { empty: 'No client connected.', class: 'data' }));
  };
  store.watch('clients', renderClients);
  store.watch('rooms', renderClients);
  return section;
}

export default { id: 'dashboard', create };
