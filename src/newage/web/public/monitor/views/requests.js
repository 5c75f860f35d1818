// Requests: every LLM request the server still remembers with its state
// (queued with position, forwarded to whom, streaming, completed, failed and
// why, cancelled), its timings and, for one request, the trace of what
// happened to it (#/requests/<requestId>). Kept live by REQUEST_STATE.

import { MSG_TYPE } from '/lib/constants.js';
import { badge, clock, debounce, fill, h, ms, select, table, text } from '../dom.js';
import { attempt } from '../ui.js';

const PAGE = 25;
const STATES = [['', 'all states'], ['open', 'open (waiting, running)'], ['held', 'waiting (queued, held by the mode)'],
  ['done', 'finished'], ['failed', 'failed'], ['completed', 'completed'], ['cancelled', 'cancelled']];
const LABELS = { not_forwarded: 'recorded, not forwarded', processing: 'forwarded', submitted: 'submitted (merged)' };

let view = null;

export function stateKind(state) {
  if (state === 'completed') return 'ok';
  if (state === 'failed') return 'danger';
  if (state === 'queued' || state === 'not_forwarded' || state === 'stalled') return 'warn';
  return 'accent';
}

function stateCell(r) {
  let label = LABELS[r.state] || r.state;
  if (r.state === 'queued' && r.position) label += ` #${r.position}`;
  return h('td', { class: 'req-state' }, badge(label, stateKind(r.state)),
    r.reason ? h('div', { class: 'small msg-error' }, r.reason) : null);
}

function create(ctx) {
  let offset = 0;
  let total = 0;
  let openId = null;
  const stateSelect = select(STATES, '', { id: 'req-state', 'aria-label': 'State' });
  const search = h('input', { type: 'search', id: 'req-search', placeholder: 'Request, room, client or extension', 'aria-label': 'Search requests' });
  const where = h('span', { class: 'muted small pager-where', id: 'req-where' });
  const prev = h('button', { type: 'button', class: 'small', id: 'req-prev' }, '‹ Newer');
  const next = h('button', { type: 'button', class: 'small', id: 'req-next' }, 'Older ›');
  const list = h('div', { id: 'req-list' });
  const trace = h('div', { class: 'card', id: 'request-trace', hidden: true });

  const section = h('section', { 'aria-labelledby': 'req-title' },
    h('div', { class: 'view-head' }, h('h1', { id: 'req-title' }, 'Requests')),
    trace,
    h('div', { class: 'card' },
      h('div', { class: 'toolbar' }, search, stateSelect, h('span', { class: 'spacer' }), where, prev, next),
      list));

  async function load() {
    const ack = await attempt('Requests', () => ctx.call('/debug', MSG_TYPE.GET_REQUESTS,
      { state: stateSelect.value || undefined, search: search.value.trim() || undefined, offset, limit: PAGE }));
    if (!ack) return;
    total = ack.total;
    // a cluster: the nodes that did not answer in time are missing from the page
    const missing = ack.unanswered?.length ? ` · ${ack.unanswered.length} node(s) did not answer` : '';
    text(where, (total ? `${offset + 1}–${offset + ack.requests.length} of ${total}` : 'none') + missing);
    prev.disabled = offset === 0;
    next.disabled = offset + PAGE >= total;
    fill(list, table(
      [{ label: 'Request' }, { label: 'Room' }, { label: 'From' }, { label: 'State' }, { label: 'To' },
        { label: 'Wait', class: 'num' }, { label: '1st token', class: 'num' }, { label: 'Tokens', class: 'num' },
        { label: 'Duration', class: 'num' }, { label: 'Received' }],
      ack.requests.map(row),
      { empty: 'No request matches.', class: 'data', id: 'requests-table' }));
  }

  function row(r) {
    const open = () => { window.location.hash = `#/requests/${encodeURIComponent(r.requestId)}`; };
    return h('tr', {
      class: ['clickable', r.requestId === openId && 'selected'], tabindex: '0', dataset: { requestId: r.requestId, state: r.state },
      on: { click: open, keydown: (e) => { if (e.key === 'Enter') open(); } },
    },
    h('td', null, h('code', { title: r.requestId }, r.requestId.length > 12 ? `${r.requestId.slice(0, 12)}…` : r.requestId),
      r.kind === 'think' ? badge('think') : null,
      r.node ? h('div', { class: 'muted small', title: 'cluster node' }, `node ${r.node}`) : null),
    h('td', null, h('a', { href: `#/rooms/${encodeURIComponent(r.roomName)}`, class: 'ident' }, r.roomName),
      h('div', { class: 'muted small' }, r.mode)),
    h('td', null, r.requester ?? '–'),
    stateCell(r),
    // a target's own outcome is named only where it differs from the request's
    h('td', null, Object.entries(r.targets).map(([ext, s]) => h('span', { class: 'chip', title: s, dataset: { state: s } },
      s === r.state || (s === 'pending' && r.state !== 'failed') ? ext : `${ext}: ${s}`))),
    h('td', { class: 'num' }, ms(r.queueWaitMs)),
    h('td', { class: 'num' }, ms(r.firstTokenMs)),
    h('td', { class: 'num' }, r.tokens || '–'),
    h('td', { class: 'num' }, ms(r.durationMs)),
    h('td', { class: 'nowrap' }, clock(r.createdAt)));
  }

  async function showTrace(id) {
    openId = id;
    if (!id) { trace.hidden = true; return; }
    trace.hidden = false;
    let ack;
    try {
      ack = await ctx.call('/debug', MSG_TYPE.GET_REQUESTS, { requestId: id });
    } catch (err) {
      fill(trace, h('h2', null, 'Request ', h('code', null, id)), h('p', { class: 'form-error' }, err.message));
      return;
    }
    if (openId !== id) return;
    const r = ack.request;
    fill(trace,
      h('div', { class: 'card-head' },
        h('h2', null, 'Request ', h('code', { id: 'trace-id' }, r.requestId)),
        h('a', { href: '#/requests', class: 'button-link' }, 'Close')),
      h('table', { class: 'data' }, h('tbody', null,
        h('tr', null, h('th', null, 'State'), stateCell(r)),
        h('tr', null, h('th', null, 'Room'), h('td', null, `${r.roomName} (${r.mode})`)),
        r.node ? h('tr', null, h('th', null, 'Node'), h('td', null, h('code', null, r.node))) : null,
        h('tr', null, h('th', null, 'Timings'), h('td', null,
          `queue wait ${ms(r.queueWaitMs)} · first token ${ms(r.firstTokenMs)} · ${r.tokens} token(s) · duration ${ms(r.durationMs)}`)))),
      h('h3', null, 'Trace'),
      h('ol', { class: 'trace', id: 'trace-events' }, r.trace.map((e) => {
        const { at, event, ...detail } = e;
        const extra = Object.entries(detail).map(([k, v]) => `${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`).join(' · ');
        return h('li', { dataset: { event } }, h('time', { datetime: at }, clock(at)), h('strong', null, event), extra ? ` ${extra}` : '');
      })));
  }

  const reload = debounce(() => { if (!section.hidden) load(); }, 150);
  stateSelect.addEventListener('change', () => { offset = 0; load(); });
  search.addEventListener('input', debounce(() => { offset = 0; load(); }, 250));
  prev.addEventListener('click', () => { offset = Math.max(0, offset - PAGE); load(); });
  next.addEventListener('click', () => { offset += PAGE; load(); });

  view = {
    changed(r) {
      if (section.hidden) return;
      const el = list.querySelector(`tr[data-request-id="${CSS.escape(r.requestId)}"]`);
      if (el) el.replaceWith(row(r)); else if (offset === 0) reload();
      if (r.requestId === openId) showTrace(openId);
    },
  };
  section.onShow = (arg) => { load(); showTrace(arg); };
  return section;
}

function wire(conn) {
  conn.on('/llm', MSG_TYPE.REQUEST_STATE, (p) => { if (view && p && p.requestId) view.changed(p); });
}

export default { id: 'requests', create, wire };
