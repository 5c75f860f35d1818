// Connection policy and assignments: current policy, switch it, manual
// assignment editor, live view of which client rooms get which extensions.

import { MSG_TYPE } from '/lib/constants.js';
import { badge, field, fill, h, select, table, text } from '../dom.js';
import * as store from '../store.js';
import { POLICIES } from '../model.js';
import { attempt, confirmAction, ok } from '../ui.js';

const HELP = {
  Free: 'Every client room gets every connected extension.',
  Manual: 'Each client room gets the extensions you assign below (kept while an extension is away).',
  Balanced: 'One extension per client room, spread evenly.',
  Broadcast: 'Every client room gets every extension, and requests go to all of them.',
  Random: 'One extension drawn per client room, kept while it stays connected.',
};

function create(ctx) {
  let lastPolicy = null;
  const current = h('strong', { id: 'policy-current', class: 'policy-name' }, '–');
  const help = h('p', { class: 'muted', id: 'policy-help' });
  const policySelect = select(POLICIES, 'Free', { id: 'policy-select', 'aria-label': 'Connection policy' });
  const selectHelp = h('p', { class: 'muted small' });
  const explainChoice = () => text(selectHelp, policySelect.value !== lastPolicy ? HELP[policySelect.value] || '' : '');
  policySelect.addEventListener('change', explainChoice);
  const apply = h('button', {
    type: 'button', class: 'primary', id: 'policy-apply',
    on: {
      click: async () => {
        const view = store.get('assignments') || {};
        const assigned = Object.values(view.manualAssignments || {}).some((list) => list.length);
        if (policySelect.value === 'Manual' && lastPolicy !== 'Manual' && !assigned) {
          const yes = await confirmAction('Switch to Manual',
            'No client room has an extension assigned yet: under Manual, every client loses its extensions until you assign them below.', 'Switch to Manual');
          if (!yes) return;
        }
        const ack = await attempt('Switch policy', () => ctx.call('/rooms', MSG_TYPE.SET_CONNECTION_POLICY, { policy: policySelect.value }));
        if (ack) ok(`Connection policy: ${ack.policy}.`);
      },
    },
  }, 'Switch policy');
  const extensions = h('div', { class: 'chips', id: 'policy-extensions' });
  const live = h('div', { id: 'policy-live' });
  const editorNote = h('p', { class: 'muted small' });
  const editor = h('div', { id: 'policy-editor' });
  const saved = h('div', { id: 'policy-saved' });

  const section = h('section', { 'aria-labelledby': 'policy-title' },
    h('div', { class: 'view-head' }, h('h1', { id: 'policy-title' }, 'Connection policy')),
    h('div', { class: 'grid-2' },
      h('div', { class: 'card' }, h('h2', null, 'Current policy'), h('p', { class: 'policy-line' }, current), help,
        h('div', { class: 'inline-form' }, field('Switch to', policySelect), apply),
        selectHelp),
      h('div', { class: 'card' }, h('h2', null, 'Connected extensions'), extensions)),
    h('div', { class: 'card' }, h('h2', null, 'Live assignments'),
      h('p', { class: 'muted small' }, 'Client rooms are the connected plain clients; this view follows the server as clients and extensions come and go.'),
      live),
    h('div', { class: 'card' }, h('h2', null, 'Manual assignments'), editorNote, editor, saved));

  const dirty = new Map(); // client room -> Set of extensions being edited

  function render(view) {
    if (!view) return;
    const policy = view.policy;
    text(current, policy);
    text(help, HELP[policy] || '');
    if (lastPolicy !== policy) {
      lastPolicy = policy;
      policySelect.value = policy;
      explainChoice();
    }
    const exts = view.extensions || [];
    fill(extensions, exts.length ? exts.map((e) => h('span', { class: 'chip accent', title: e }, e)) : h('span', { class: 'muted' }, 'No extension connected.'));

    const rooms = view.clientRooms || [];
    const assigned = view.assignments || {};
    fill(live, table(
      [{ label: 'Client room' }, { label: 'Extensions it gets' }],
      rooms.map((room) => h('tr', { dataset: { room } },
        h('td', null, h('span', { class: 'ident' }, room)),
        h('td', null, (assigned[room] || []).length
          ? assigned[room].map((e) => h('span', { class: 'chip accent', title: e }, e))
          : badge('none', 'danger')))),
      { empty: 'No client connected.', class: 'data', id: 'assignments-table' }));

    const manual = view.manualAssignments || {};
    const editable = policy === 'Manual';
    text(editorNote, editable
      ? 'Tick the extensions each client room may use, then save the row. Only connected extensions can be assigned.'
      : 'Manual assignments are edited in the Manual policy; what is saved here comes back when you switch to it.');
    fill(editor, table(
      [{ label: 'Client room' }, { label: 'Extensions' }, { label: '', class: 'actions' }],
      rooms.map((room) => {
        const chosen = dirty.get(room) || new Set(manual[room] || []);
        const boxes = exts.map((e) => {
          const box = h('input', { type: 'checkbox', checked: chosen.has(e), disabled: !editable, 'aria-label': `${e} for ${room}` });
          box.addEventListener('change', () => {
            const set = dirty.get(room) || new Set(chosen);
            if (box.checked) set.add(e); else set.delete(e);
            dirty.set(room, set);
          });
          return h('label', { class: 'check chip-check' }, box, ' ', e);
        });
        const away = (manual[room] || []).filter((e) => !exts.includes(e));
        return h('tr', { dataset: { room } },
          h('td', null, h('span', { class: 'ident' }, room)),
          h('td', null, boxes.length ? boxes : h('span', { class: 'muted' }, 'No extension connected.'),
            away.map((e) => h('span', { class: 'chip', title: 'assigned, not connected' }, `${e} (away)`))),
          h('td', { class: 'actions' }, h('button', {
            type: 'button', class: 'small primary', disabled: !editable || !exts.length,
            on: { click: () => save(room, chosen) },
          }, 'Save')));
      }),
      { empty: 'No client connected.', class: 'data', id: 'manual-table' }));
    const offline = Object.entries(manual).filter(([room]) => !rooms.includes(room));
    fill(saved, offline.length
      ? [h('h3', null, 'Saved for clients not connected'),
        h('ul', { class: 'plain' }, offline.map(([room, list]) => h('li', null, h('span', { class: 'ident' }, room), ': ', list.join(', ') || 'none')))]
      : null);
  }

  async function save(room, chosen) {
    const set = dirty.get(room) || chosen;
    const view = store.get('assignments') || {};
    const extensionsNow = [...set].filter((e) => (view.extensions || []).includes(e));
    const ack = await attempt('Assign', () => ctx.call('/rooms', MSG_TYPE.ASSIGN_EXTENSION_TO_CLIENT, { clientRoom: room, extensions: extensionsNow }));
    if (!ack) return;
    dirty.delete(room);
    ok(`${room}: ${ack.extensions.length ? ack.extensions.join(', ') : 'no extension'}.`);
  }

  store.watch('assignments', render);
  return section;
}

export default { id: 'policy', create };
