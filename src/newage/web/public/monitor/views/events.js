// Events: the audit trail (admin actions, refused logins, failed requests)
// with who, what, when; filters by level, kind of action, actor and text,
// newest first, paged. The first page follows new entries while shown.

import { MSG_TYPE } from '/lib/constants.js';
import { badge, clock, debounce, fill, h, select, table, text } from '../dom.js';
import { attempt } from '../ui.js';

const PAGE = 50;
const FOLLOW_EVERY = 3000;
const LEVELS = [['', 'all levels'], ['warn', 'warnings and errors'], ['error', 'errors']];
const ACTIONS = [['', 'all actions'], ['trust', 'trust'], ['key', 'keys'], ['identity', 'identities'],
  ['client', 'disconnects'], ['room', 'rooms and modes'], ['member', 'members, roles, mutes'], ['policy', 'policy'],
  ['settings', 'settings'], ['login', 'refused logins'], ['request', 'requests']];
const LEVEL_KIND = { info: '', warn: 'warn', error: 'danger' };

function create(ctx) {
  const pages = []; // beforeId of each page shown so far (null: the newest)
  let timer = null;
  const level = select(LEVELS, '', { id: 'ev-level', 'aria-label': 'Level' });
  const action = select(ACTIONS, '', { id: 'ev-action', 'aria-label': 'Action' });
  const actor = h('input', { type: 'search', id: 'ev-actor', placeholder: 'Who', 'aria-label': 'Who', autocomplete: 'off' });
  const search = h('input', { type: 'search', id: 'ev-search', placeholder: 'Search', 'aria-label': 'Search events', autocomplete: 'off' });
  const where = h('span', { class: 'muted small pager-where', id: 'ev-where' });
  const newer = h('button', { type: 'button', class: 'small', id: 'ev-newer' }, '‹ Newer');
  const older = h('button', { type: 'button', class: 'small', id: 'ev-older' }, 'Older ›');
  const list = h('div', { id: 'ev-list' });
  const section = h('section', { 'aria-labelledby': 'ev-title' },
    h('div', { class: 'view-head' }, h('h1', { id: 'ev-title' }, 'Events')),
    h('div', { class: 'card' },
      h('p', { class: 'muted small' }, 'Who changed what, refused logins and failed requests, as the server recorded them.'),
      h('div', { class: 'toolbar' }, level, action, actor, search, h('span', { class: 'spacer' }), where, newer, older),
      list));

  let lastIds = '';
  async function load() {
    const before = pages[pages.length - 1] ?? null;
    const ack = await attempt('Events', () => ctx.call('/debug', MSG_TYPE.GET_AUDIT_LOG, {
      level: level.value || undefined, action: action.value || undefined,
      actor: actor.value.trim() || undefined, search: search.value.trim() || undefined,
      beforeId: before ?? undefined, limit: PAGE,
    }));
    if (!ack) return;
    const entries = ack.entries;
    const first = (pages.length - 1) * PAGE;
    text(where, ack.total ? `${Math.min(first + 1, ack.total)}–${first + entries.length} of ${ack.total}` : 'none');
    newer.disabled = pages.length <= 1;
    older.disabled = first + entries.length >= ack.total;
    older.dataset.next = entries.length ? String(entries[entries.length - 1].id) : '';
    const ids = entries.map((e) => e.id).join(',');
    if (ids === lastIds) return; // nothing new: the table stays as it is
    lastIds = ids;
    fill(list, table(
      [{ label: 'When' }, { label: 'Level' }, { label: 'Who' }, { label: 'What' }, { label: 'Target' }, { label: 'Details' }],
      entries.map((e) => h('tr', { dataset: { action: e.action, level: e.level, id: String(e.id) } },
        h('td', { class: 'nowrap' }, h('time', { datetime: e.at }, clock(e.at))),
        h('td', null, badge(e.level, LEVEL_KIND[e.level] || '')),
        h('td', null, h('span', { class: 'ident' }, e.actor)),
        h('td', null, h('code', null, e.action)),
        h('td', null, e.target ?? '–'),
        h('td', { class: 'desc small' }, Object.entries(e.details || {})
          .map(([k, v]) => `${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`).join(' · ')))),
      { empty: 'No event matches.', class: 'data', id: 'events-table' }));
  }

  const restart = () => { pages.length = 0; pages.push(null); lastIds = ''; load(); };
  level.addEventListener('change', restart);
  action.addEventListener('change', restart);
  actor.addEventListener('input', debounce(restart, 250));
  search.addEventListener('input', debounce(restart, 250));
  newer.addEventListener('click', () => { if (pages.length > 1) { pages.pop(); load(); } });
  older.addEventListener('click', () => { if (older.dataset.next) { pages.push(Number(older.dataset.next)); load(); } });

  const follow = () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      if (section.hidden) return;
      if (pages.length === 1) await load();
      follow();
    }, FOLLOW_EVERY);
  };
  section.onShow = () => { restart(); follow(); };
  return section;
}

export default { id: 'events', create };
