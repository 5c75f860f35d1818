// Live traffic: a room's history (its newest page at once, older pages on
// scroll) and new messages, streamed answers
// token by token, an LLM request as admin, and the "Connection active?" ping.
// Admins are members of monitor-room. While the server mirrors rooms to
// monitors (its mirrorToMonitors setting, on by default), /llm brings the
// live traffic of every room (new messages, streams, answers, edits); with it
// off, only that of the rooms the admin is a member of (history still loads
// for any room). Member status updates reach monitor-room either way. This
// view filters what arrives by roomName.

import { MSG_TYPE, PING_TEXT, STREAM_TYPE } from '/lib/constants.js';
import { badge, clock, field, fill, h, ms, text, uid } from '../dom.js';
import * as store from '../store.js';
import { messageText } from '../model.js';
import { attempt, toast } from '../ui.js';

const PAGE = 50; // messages per history page (the newest first, older on scroll)
const ALL = '*';
const LIVE_CAP = 500; // elements kept in the all-rooms view

let view = null; // the handlers of the created view (events before it exists are ignored)

function kindOf(m) {
  if (m.isSystem) return 'system';
  if (m.isResponse || m.fromLlm) return 'response';
  return 'request';
}

function create(ctx) {
  let room = ctx.me;
  let messages = []; // history + live of `room`, oldest first
  let loading = null; // {room, live: []} while the newest page is on its way
  let cursor = null; // where the next older page ends (GET_HISTORY_PAGE before)
  let hasMore = false;
  let total = 0; // messages of the room, as the server counted them (+ live ones)
  let fetchingOlder = false;
  const elements = new Map(); // messageId -> element
  const streams = new Map(); // outputId -> {el, body, status}
  const requestStatus = new Map(); // requestId -> {status, message}
  const requestInfo = new Map(); // requestId -> its REQUEST_STATE (targets, timings)
  const statuses = new Map(); // room -> Map(identity -> status)

  // ---------------------------------------------------------------- controls
  const roomSelect = h('select', { id: 'traffic-room', 'aria-label': 'Room' });
  const reload = h('button', { type: 'button', on: { click: () => loadHistory() } }, 'Reload');
  const count = h('span', { class: 'muted small', id: 'traffic-count' });
  const pingButton = h('button', { type: 'button', id: 'traffic-ping' }, PING_TEXT);
  const pingResult = h('span', { class: 'muted small', id: 'traffic-ping-result', role: 'status' });
  const statusStrip = h('div', { class: 'status-strip', id: 'traffic-status', 'aria-live': 'polite', hidden: true });
  const older = h('button', { type: 'button', class: 'older', id: 'traffic-older', hidden: true }, 'Show older messages');
  const list = h('div', { class: 'messages', id: 'traffic-messages' });
  const log = h('div', { class: 'message-log', id: 'traffic-log', tabindex: '0', 'aria-label': 'Messages' }, older, list);

  const extSelect = h('select', { id: 'traffic-extension', 'aria-label': 'Extension' });
  const input = h('textarea', { id: 'traffic-input', rows: '3', placeholder: 'Message to the extension (Ctrl+Enter sends)', 'aria-label': 'Message' });
  const send = h('button', { type: 'submit', class: 'primary', id: 'traffic-send' }, 'Send request');
  const sendResult = h('p', { class: 'small', id: 'traffic-send-result', role: 'status' });
  const composer = h('form', { class: 'composer', id: 'traffic-composer' },
    h('div', { class: 'composer-row' },
      field('Extension', extSelect),
      h('span', { class: 'muted small composer-room' }, 'to room ', h('strong', { id: 'traffic-target-room' }, room))),
    input,
    h('div', { class: 'composer-row' }, send, sendResult));

  const section = h('section', { 'aria-labelledby': 'traffic-title', class: 'traffic' },
    h('div', { class: 'view-head' }, h('h1', { id: 'traffic-title' }, 'Live traffic')),
    h('div', { class: 'card traffic-card' },
      h('div', { class: 'toolbar' },
        field('Room', roomSelect, { class: 'inline' }),
        reload, count, h('span', { class: 'spacer' }), pingButton, pingResult),
      statusStrip,
      log,
      composer));

  roomSelect.addEventListener('change', () => {
    room = roomSelect.value;
    text(section.querySelector('#traffic-target-room'), room === ALL ? '(pick a room)' : room);
    loadHistory();
    renderStatuses();
  });

  older.addEventListener('click', () => loadOlder());
  // scrolling to the top of a room's history loads the page before
  log.addEventListener('scroll', () => { if (log.scrollTop < 40 && hasMore && room !== ALL) loadOlder(); });

  // ---------------------------------------------------------------- rendering
  function header(who, kindLabel, kind, m) {
    const parts = [h('span', { class: 'who' }, who), badge(kindLabel, kind)];
    if (room === ALL && m.roomName) parts.push(badge(`#${m.roomName}`, 'room'));
    return parts;
  }

  function renderMessage(m) {
    const kind = kindOf(m);
    const el = h('article', {
      class: ['msg', `msg-${kind}`],
      dataset: { messageId: m.messageId || '', requestId: m.requestId || '', kind },
    });
    const meta = h('header', { class: 'msg-head' }, header(m.identity ?? '?', kind, kind, m));
    if (kind === 'request') {
      if (m.mode) meta.append(badge(m.mode));
      if (m.isMerged) meta.append(badge(`merged ×${m.mergedFromCount ?? '?'}`));
      const state = requestStatus.get(m.requestId);
      meta.append(h('span', { class: 'req-status' }, state ? badge(state.status, statusKind(state.status)) : null),
        h('span', { class: 'req-detail muted small' }, detailOf(requestInfo.get(m.requestId))),
        m.requestId ? h('a', { class: 'req-trace small', href: `#/requests/${encodeURIComponent(m.requestId)}` }, 'trace') : null);
    } else if (kind === 'response') {
      if (m.status && m.status !== 'completed') meta.append(badge(m.status, statusKind(m.status)));
      if (m.incomplete) meta.append(badge('incomplete', 'warn'));
      if (m.type === 'THINK_RESPONSE') meta.append(badge('think'));
    }
    if (m.lastEdited) meta.append(badge('edited'));
    meta.append(h('time', { datetime: m.timestamp || '' }, clock(m.timestamp)));
    el.append(meta, h('div', { class: 'msg-body' }, messageText(m)));
    if (m.error) el.append(h('div', { class: 'msg-error' }, typeof m.error === 'string' ? m.error : (m.error.message || JSON.stringify(m.error))));
    return el;
  }

  function statusKind(status) {
    if (status === 'completed') return 'ok';
    if (status === 'failed' || status === 'error') return 'danger';
    if (status === 'queued') return 'warn';
    return 'accent';
  }

  function nearBottom() {
    return log.scrollHeight - log.scrollTop - log.clientHeight < 80;
  }

  function scrollDown() {
    log.scrollTop = log.scrollHeight;
  }

  function updateCount() {
    if (room === ALL) {
      text(count, `${list.children.length} live event(s)`);
      return;
    }
    text(count, loading ? 'loading…' : `${messages.length} of ${Math.max(total, messages.length)} message(s)`);
    older.hidden = !hasMore || !!loading;
    if (!older.hidden) text(older, fetchingOlder ? 'Loading older messages…' : 'Show older messages');
  }

  function renderAll() {
    elements.clear();
    const shown = messages;
    fill(list, shown.map((m) => {
      const el = renderMessage(m);
      if (m.messageId) elements.set(m.messageId, el);
      return el;
    }));
    // streams still open in this room stay visible below the history
    for (const s of streams.values()) if (room === ALL || s.roomName === room) list.append(s.el);
    if (!shown.length && !list.children.length) {
      list.append(h('p', { class: 'muted empty-log' }, room === ALL ? 'Live traffic of every room appears here as it happens.' : 'No messages in this room yet.'));
    }
    updateCount();
  }

  function dropPlaceholder() {
    const p = list.querySelector('.empty-log');
    if (p) p.remove();
  }

  function addLive(m) {
    if (m.messageId && messages.some((x) => x.messageId === m.messageId)) return;
    if (room !== ALL) {
      messages.push(m);
      total += 1;
    }
    const stick = nearBottom();
    dropPlaceholder();
    const el = renderMessage(m);
    if (m.messageId) elements.set(m.messageId, el);
    const stream = m.outputId && streams.get(m.outputId);
    if (stream && stream.el.isConnected) {
      stream.el.replaceWith(el); // the recorded answer takes the streamed bubble's place
    } else {
      // keep open streams last
      const firstStream = [...list.children].find((c) => c.classList.contains('streaming'));
      list.insertBefore(el, firstStream || null);
    }
    if (m.outputId) streams.delete(m.outputId);
    if (room === ALL) {
      while (list.children.length > LIVE_CAP) {
        const gone = list.firstElementChild;
        if (gone.dataset.messageId) elements.delete(gone.dataset.messageId);
        gone.remove();
      }
    }
    updateCount();
    if (stick) scrollDown();
  }

  function inRoom(roomName) {
    return room === ALL || roomName === room;
  }

  // ---------------------------------------------------------------- history
  async function loadHistory() {
    messages = [];
    elements.clear();
    loading = null;
    cursor = null;
    hasMore = false;
    total = 0;
    for (const [id, st] of streams) if (!st.el.classList.contains('streaming')) streams.delete(id);
    if (room === ALL) {
      renderAll();
      return;
    }
    const target = room;
    loading = { room: target, live: [] };
    fill(list);
    updateCount();
    let ack;
    try {
      ack = await ctx.call('/llm', MSG_TYPE.GET_HISTORY_PAGE, { roomName: target, limit: PAGE });
    } catch (err) {
      if (room !== target) return;
      loading = null;
      fill(list, h('p', { class: 'form-error' }, `Cannot load the history of ${target}: ${err.message}`));
      updateCount();
      return;
    }
    if (!loading || loading.room !== target) return;
    const seen = new Set(ack.messages.map((m) => m.messageId));
    const live = loading.live.filter((m) => !seen.has(m.messageId));
    messages = ack.messages.concat(live);
    cursor = ack.before;
    hasMore = ack.hasMore;
    total = ack.totalMessages + live.length;
    loading = null;
    renderAll();
    scrollDown();
  }

  async function loadOlder() {
    if (fetchingOlder || !hasMore || cursor === null || room === ALL) return;
    const target = room;
    fetchingOlder = true;
    updateCount();
    try {
      const ack = await ctx.call('/llm', MSG_TYPE.GET_HISTORY_PAGE, { roomName: target, limit: PAGE, before: cursor });
      if (room !== target) return;
      const before = log.scrollHeight - log.scrollTop;
      messages = ack.messages.concat(messages);
      cursor = ack.before;
      hasMore = ack.hasMore;
      renderAll();
      log.scrollTop = log.scrollHeight - before; // keep the reader's place
    } catch (err) {
      toast(`Older messages of ${target}: ${err.message}`, 'error');
    } finally {
      fetchingOlder = false;
      updateCount();
    }
  }

  // ---------------------------------------------------------------- member status
  function renderStatuses() {
    const rows = [];
    const rooms = room === ALL ? [...statuses.keys()] : [room];
    for (const r of rooms) {
      for (const [identity, status] of statuses.get(r) || []) {
        const label = room === ALL ? `${identity} ${status} in ${r}` : `${identity} ${status}`;
        rows.push(h('span', { class: ['chip', `st-${status}`], title: label }, label));
      }
    }
    fill(statusStrip, rows);
    statusStrip.hidden = !rows.length;
  }

  // ---------------------------------------------------------------- send and ping
  const renderExtensions = (assignments) => {
    const exts = (assignments && assignments.extensions) || [];
    const chosen = extSelect.value;
    fill(extSelect, h('option', { value: '' }, exts.length ? 'any (the server picks)' : 'none connected'),
      exts.map((e) => h('option', { value: e }, e)));
    extSelect.value = exts.includes(chosen) ? chosen : '';
  };

  composer.addEventListener('submit', async (e) => {
    e.preventDefault();
    const message = input.value;
    if (room === ALL) { showSend('Pick a room to send to.', true); return; }
    if (!message.trim()) { showSend('Type a message first.', true); return; }
    const requestId = uid();
    const payload = { requestId, message, targetRoom: room };
    if (extSelect.value) payload.target = extSelect.value;
    send.disabled = true;
    try {
      const ack = await ctx.call('/llm', MSG_TYPE.LLM_REQUEST, payload);
      input.value = '';
      let what;
      if (ack.queued) what = `queued (${ack.mode})`;
      else if (ack.forwarded) what = `forwarded to ${(ack.targets || []).join(', ') || 'the extension'} (${ack.mode})`;
      else what = ack.message || `recorded (${ack.mode})`;
      showSend(`Request sent: ${what}.`, false);
    } catch (err) {
      showSend(err.message, true);
    } finally {
      send.disabled = false;
    }
  });
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) { e.preventDefault(); composer.requestSubmit(); }
  });

  function showSend(message, error) {
    text(sendResult, message);
    sendResult.classList.toggle('form-error', error);
  }

  pingButton.addEventListener('click', async () => {
    text(pingResult, 'asking…');
    const t0 = performance.now();
    const ack = await attempt('Ping', () => ctx.call('/llm', MSG_TYPE.message, { type: STREAM_TYPE.NON_STREAM, data: PING_TEXT, requestId: uid() }));
    text(pingResult, ack ? `${ack.data} (${Math.round(performance.now() - t0)} ms)` : 'no answer');
  });

  /** Show a request's status on its message (no toast). */
  /** Where a request stands beyond its status: to whom, its place, its timings. */
  function detailOf(r) {
    if (!r) return '';
    const parts = [];
    if (r.state === 'queued' && r.position) parts.push(`#${r.position} in the queue`);
    const to = Object.keys(r.targets || {});
    if (to.length) parts.push(`→ ${to.join(', ')}`);
    if (r.queueWaitMs) parts.push(`waited ${ms(r.queueWaitMs)}`);
    if (r.firstTokenMs !== null && r.firstTokenMs !== undefined) parts.push(`first token ${ms(r.firstTokenMs)}`);
    if (r.tokens) parts.push(`${r.tokens} token(s)`);
    if (r.durationMs !== null && r.durationMs !== undefined) parts.push(`in ${ms(r.durationMs)}`);
    return parts.join(' · ');
  }

  /** REQUEST_STATE: every request's state reaches admins, whoever asked. */
  function trackRequest(r) {
    requestInfo.set(r.requestId, r);
    if (requestInfo.size > 2000) requestInfo.delete(requestInfo.keys().next().value);
    // the wire state names the server's stages; the badge keeps the status words
    const status = r.state === 'streaming' || r.state === 'pending' ? 'processing' : r.state;
    markRequest({ requestId: r.requestId, status, message: r.reason });
    for (const el of list.querySelectorAll('article.msg-request')) {
      if (el.dataset.requestId !== r.requestId) continue;
      const slot = el.querySelector('.req-detail');
      if (slot) text(slot, detailOf(r));
    }
  }

  function markRequest(p) {
    requestStatus.set(p.requestId, { status: p.status, message: p.message });
    for (const el of list.querySelectorAll('article.msg-request')) {
      if (el.dataset.requestId !== p.requestId) continue;
      const slot = el.querySelector('.req-status');
      if (!slot) continue;
      fill(slot, badge(p.status, statusKind(p.status)));
      if (p.message) slot.title = p.message;
    }
  }

  // ---------------------------------------------------------------- pushed events
  view = {
    newMessage(p) {
      const m = p && p.message;
      if (!m) return;
      const r = p.roomName || m.roomName;
      if (m.outputId && streams.has(m.outputId) && !inRoom(r)) streams.delete(m.outputId);
      if (loading && loading.room === r) { loading.live.push(m); return; }
      if (inRoom(r)) addLive({ ...m, roomName: r });
    },
    streamData(p) {
      if (!p || !p.outputId || !inRoom(p.roomName)) return;
      let s = streams.get(p.outputId);
      const stick = nearBottom();
      if (!s) {
        const body = h('div', { class: 'msg-body' });
        const state = badge('streaming…', 'accent');
        const el = h('article', { class: ['msg', 'msg-response', 'streaming'], dataset: { outputId: p.outputId, requestId: p.requestId || '' } },
          h('header', { class: 'msg-head' }, header(p.source || p.identity || '?', 'response', 'response', p), state,
            h('time', null, clock(new Date().toISOString()))),
          body);
        s = { el, body, state, roomName: p.roomName };
        streams.set(p.outputId, s);
        dropPlaceholder();
        list.append(el);
      }
      s.body.append(document.createTextNode(typeof p.data === 'string' ? p.data : ''));
      if (stick) scrollDown();
    },
    streamEnd(p) {
      const s = p && streams.get(p.outputId);
      if (!s) return;
      if (typeof p.data === 'string') text(s.body, p.data);
      // stopped (by the extension's user) and cancelled answers say so
      text(s.state, ['failed', 'stopped', 'cancelled'].includes(p.status) ? p.status : 'finished');
      s.state.className = `badge ${p.status === 'failed' ? 'danger' : 'ok'}`;
      s.el.classList.remove('streaming');
    },
    requestState(p) {
      if (p && p.requestId) trackRequest(p);
    },
    requestStatus(p) {
      if (!p || !p.requestId) return;
      markRequest(p);
      // the one toast of a failed request
      if (p.status === 'failed') toast(`Request failed: ${p.message || 'no reason given'}`, 'error');
    },
    memberStatus(p) {
      if (!p || !p.roomName || !p.identity) return;
      if (!statuses.has(p.roomName)) statuses.set(p.roomName, new Map());
      const m = statuses.get(p.roomName);
      if (p.status === 'idle') m.delete(p.identity); else m.set(p.identity, p.status);
      if (!m.size) statuses.delete(p.roomName);
      renderStatuses();
    },
    updated(p) {
      if (!p || !p.message || !inRoom(p.roomName)) return;
      const m = p.message;
      const i = messages.findIndex((x) => x.messageId === m.messageId);
      if (i >= 0) messages[i] = m;
      const el = elements.get(m.messageId);
      if (el) { const next = renderMessage(m); el.replaceWith(next); elements.set(m.messageId, next); }
    },
    deleted(p) {
      if (!p || !inRoom(p.roomName)) return;
      const ids = new Set(p.messageIds || []);
      messages = messages.filter((m) => !ids.has(m.messageId));
      for (const id of ids) { const el = elements.get(id); if (el) el.remove(); elements.delete(id); }
      updateCount();
    },
    cleared(p) {
      if (p && p.roomName === room) loadHistory();
    },
    error(p) {
      // an extension's failure report (or a refused request, whose ack says
      // why): REQUEST_STATUS_UPDATE 'failed' follows a failure and toasts
      if (p && p.requestId) markRequest({ requestId: p.requestId, status: 'failed', message: p.message });
    },
    reconnected() {
      loadHistory();
    },
  };

  store.watch('assignments', renderExtensions);
  renderExtensions(store.get('assignments'));
  store.watch('rooms', (rooms) => {
    const names = rooms.map((r) => r.name);
    if (room !== ALL && !names.includes(room)) names.unshift(room);
    const current = [...roomSelect.options].map((o) => o.value);
    const next = [ALL, ...names];
    if (JSON.stringify(current) === JSON.stringify(next)) return;
    fill(roomSelect, h('option', { value: ALL }, 'All rooms (live only)'), names.map((n) => h('option', { value: n }, n)));
    roomSelect.value = room;
  });
  loadHistory();
  return section;
}

function wire(conn) {
  const on = (event, fn) => conn.on('/llm', event, (p) => { if (view) fn(p); });
  on(MSG_TYPE.NEW_MESSAGE, (p) => view.newMessage(p));
  on(MSG_TYPE.SERVER_STREAM_DATA, (p) => view.streamData(p));
  on(MSG_TYPE.SERVER_STREAM_END, (p) => view.streamEnd(p));
  on(MSG_TYPE.REQUEST_STATUS_UPDATE, (p) => view.requestStatus(p));
  on(MSG_TYPE.REQUEST_STATE, (p) => view.requestState(p));
  on(MSG_TYPE.MEMBER_STATUS_UPDATE, (p) => view.memberStatus(p));
  on(MSG_TYPE.MESSAGE_UPDATED, (p) => view.updated(p));
  on(MSG_TYPE.MESSAGES_DELETED, (p) => view.deleted(p));
  on(MSG_TYPE.MESSAGES_CLEARED, (p) => view.cleared(p));
  on(MSG_TYPE.ERROR, (p) => view.error(p));
  conn.addEventListener('reconnected', (e) => { if (view && e.detail.ns === '/llm') view.reconnected(); });
}

export default { id: 'traffic', create, wire };
