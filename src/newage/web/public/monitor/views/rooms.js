// Rooms: list, create, delete; members with roles; add, remove, set role,
// kick, mute/unmute with a duration; message request mode.

import { MSG_TYPE } from '/lib/constants.js';
import { badge, field, fill, h, select, text, time } from '../dom.js';
import { pagedTable } from '../list.js';
import * as store from '../store.js';
import { MODES, MONITOR_ROOM, ROLES, describe, muteLabel } from '../model.js';
import { attempt, attemptInline, confirmAction, ok } from '../ui.js';

const UNITS = [['1', 'seconds'], ['60', 'minutes'], ['3600', 'hours'], ['0', 'permanent']];

function create(ctx) {
  let selected = null;
  let members = [];
  let roomInfo = null;

  // ---------------------------------------------------------------- list + create
  const online = () => new Set((store.get('clients') || []).map((c) => c.identity));
  const showGone = h('input', { type: 'checkbox', id: 'room-show-gone' });
  let present = new Set();
  const list = pagedTable({
    id: 'room-table',
    columns: [{ label: 'Room', sort: (r) => r.name }, { label: 'Mode', sort: (r) => r.mode },
      { label: 'Members', class: 'num', sort: (r) => (r.members || []).length }],
    key: (r) => r.name,
    search: (r) => `${r.name} ${r.master || ''} ${r.mode}`,
    pageSize: 25,
    empty: 'No rooms yet.',
    // personal rooms of clients gone away are noise once there are hundreds
    accept: (r) => showGone.checked || !r.personal || present.has(r.name) || r.name === selected,
    filters: [h('label', { class: 'check small' }, showGone, ' personal rooms of gone clients')],
    row: (r) => h('tr', {
      class: ['clickable', r.name === selected && 'selected'],
      dataset: { room: r.name },
      tabindex: '0',
      'aria-selected': String(r.name === selected),
      title: r.master ? `master: ${r.master}` : 'no master',
      on: {
        click: () => open(r.name),
        keydown: (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); open(r.name); } },
      },
    },
    h('td', null, h('span', { class: 'ident' }, r.name),
      r.personal ? badge(present.has(r.name) ? 'personal' : 'personal, gone') : null, r.name === MONITOR_ROOM ? badge('admins', 'warn') : null),
    h('td', { class: 'small' }, r.mode),
    h('td', { class: 'num' }, (r.members || []).length)),
  });
  showGone.addEventListener('change', () => list.reset());
  const nameInput = h('input', { id: 'room-name', name: 'roomName', required: true, spellcheck: 'false', autocomplete: 'off', placeholder: 'New room name' });
  const createError = h('p', { class: 'form-error', role: 'alert', hidden: true });
  const createForm = h('form', { class: 'inline-form', id: 'room-create' },
    field('Room name', nameInput, { class: 'grow' }),
    h('button', { type: 'submit', class: 'primary' }, 'Create room'));
  createForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    const roomName = nameInput.value;
    const ack = await attemptInline(createError, () => ctx.call('/rooms', MSG_TYPE.CREATE_ROOM, { roomName }));
    if (!ack) return;
    ok(`Room ${roomName} created.`);
    nameInput.value = '';
    selected = roomName;
    await ctx.refresh.roomsNow();
    loadMembers();
  });

  // ---------------------------------------------------------------- details
  const detail = h('div', { class: 'card room-detail', id: 'room-detail' });
  const section = h('section', { 'aria-labelledby': 'rooms-title' },
    h('div', { class: 'view-head' }, h('h1', { id: 'rooms-title' }, 'Rooms')),
    h('div', { class: 'split' },
      h('div', { class: 'card room-list-card' },
        h('h2', null, 'All rooms'),
        h('div', { id: 'room-list' }, list.el),
        createForm, createError),
      detail));

  function renderList() {
    present = online();
    list.set(store.get('rooms') || []);
  }

  /** Rooms are opened through their deep link, #/rooms/<name>. */
  function open(name) {
    const hash = `#/rooms/${encodeURIComponent(name)}`;
    if (window.location.hash === hash) choose(name); else window.location.hash = hash;
  }

  async function choose(name) {
    selected = name;
    list.refresh();
    await loadMembers();
    // one column (narrow window): bring the details into view
    if (window.matchMedia('(max-width: 1000px)').matches) detail.scrollIntoView({ block: 'start', behavior: 'smooth' });
  }

  async function loadMembers() {
    if (!selected) { renderDetail(); return; }
    try {
      const ack = await ctx.call('/rooms', MSG_TYPE.GET_CLIENTS_IN_ROOM, { roomName: selected });
      if (ack.roomName !== selected) return;
      members = ack.clients || [];
      roomInfo = ack.room || null;
    } catch (err) {
      if (err.code === 'not_found') {
        selected = null;
        members = [];
        roomInfo = null;
      } else {
        fill(detail, h('p', { class: 'form-error' }, `${selected}: ${err.message}`));
        return;
      }
    }
    renderDetail();
  }

  // the shared mute duration control
  const muteAmount = h('input', { type: 'number', min: '1', step: '1', value: '5', id: 'mute-amount', 'aria-label': 'Mute duration' });
  const muteUnit = select(UNITS, '60', { id: 'mute-unit', 'aria-label': 'Mute duration unit' });
  muteUnit.addEventListener('change', () => { muteAmount.disabled = muteUnit.value === '0'; });
  const muteSeconds = () => (muteUnit.value === '0' ? 0 : Math.max(1, Math.round(Number(muteAmount.value) || 0) * Number(muteUnit.value)));

  // persistent controls (kept across live refreshes so typing is never lost)
  const modeSelect = select(MODES, 'Immediate', { id: 'room-mode', 'aria-label': 'Message request mode' });
  const modeButton = h('button', {
    type: 'button',
    on: {
      click: async () => {
        const name = selected;
        const ack = await attempt('Set mode', () => ctx.call('/rooms', MSG_TYPE.SET_ROOM_MESSAGE_REQUEST_MODE, { roomName: name, mode: modeSelect.value }));
        if (ack) { ok(ack.changed ? `${name} is now ${ack.mode}.` : `${name} already was ${ack.mode}.`); ctx.refresh.rooms(); loadMembers(); }
      },
    },
  }, 'Apply mode');
  const datalist = h('datalist', { id: 'member-candidates' });
  const idInput = h('input', { id: 'member-identity', list: 'member-candidates', required: true, spellcheck: 'false', autocomplete: 'off', placeholder: 'identity' });
  const roleInput = select(ROLES, 'guest', { id: 'member-role', 'aria-label': 'Role' });
  const addError = h('p', { class: 'form-error', role: 'alert', hidden: true });
  const addForm = h('form', { class: 'inline-form', id: 'member-add' },
    field('Add member', [idInput, datalist], { class: 'grow' }),
    field('Role', roleInput),
    h('button', { type: 'submit', class: 'primary' }, 'Add'));
  addForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    const identity = idInput.value.trim();
    const room = selected;
    if (identity && !(await known(identity))) {
      const yes = await confirmAction('Unknown identity',
        `No client named ${identity} is connected, trusted or has ever connected. Add it to ${room} anyway? It joins when a client with that identity connects.`, 'Add anyway');
      if (!yes) return;
    }
    const ack = await attemptInline(addError,
      () => ctx.call('/rooms', MSG_TYPE.ADD_CLIENT_TO_ROOM, { identity, roomName: room, role: roleInput.value }));
    if (!ack) return;
    ok(`${identity} joined ${room} as ${roleInput.value}.`);
    idInput.value = '';
    loadMembers();
    ctx.refresh.rooms();
  });
  const head = h('div', { class: 'card-head' });
  const meta = h('p', { class: 'muted small' });
  const memberList = pagedTable({
    id: 'member-table',
    columns: [{ label: 'Member', sort: (m) => m.identity }, { label: 'Role', sort: (m) => ROLES.indexOf(m.role) },
      { label: '', class: 'actions' }],
    key: (m) => m.identity,
    search: (m) => `${m.identity} ${m.role} ${describe(m)}`,
    pageSize: 25,
    empty: 'No members.',
    row: (m) => memberRow(roomInfo, m),
  });
  const memberTable = h('div', { id: 'member-table-wrap' }, memberList.el);

  function memberRow(room, m) {
    const roleSelect = select(ROLES, m.role, { 'aria-label': `Role of ${m.identity}`, class: 'role-select' });
    roleSelect.addEventListener('change', async () => {
      if (m.role === 'master') {
        const yes = await confirmAction('Demote the master',
          `${m.identity} is the master of ${room.name}. Make them ${roleSelect.value}? The room then has no master until you name one.`, 'Demote');
        if (!yes) { roleSelect.value = m.role; return; }
      }
      const ack = await attempt('Set role', () => ctx.call('/rooms', MSG_TYPE.SET_MEMBER_ROLE, { targetIdentity: m.identity, roomName: room.name, role: roleSelect.value }));
      if (ack) ok(`${m.identity} is now ${roleSelect.value} of ${room.name}.`);
      else roleSelect.value = m.role;
      loadMembers();
      ctx.refresh.rooms();
    });
    const muted = muteLabel(m);
    const personalOwner = room.personal && m.identity === room.name;
    return h('tr', { dataset: { identity: m.identity } },
      h('td', { class: 'member' },
        h('div', null, h('span', { class: 'ident' }, m.identity),
          m.online ? badge('online', 'ok') : badge('offline'), muted ? badge(muted, 'danger') : null),
        h('div', { class: 'muted small desc' }, describe(m))),
      h('td', null, roleSelect),
      h('td', { class: 'actions' },
        muted
          ? h('button', { type: 'button', class: 'small', on: { click: () => unmute(room.name, m.identity) } }, 'Unmute')
          : h('button', { type: 'button', class: 'small', on: { click: () => mute(room.name, m.identity) } }, 'Mute'),
        personalOwner ? null : h('button', { type: 'button', class: 'small', on: { click: () => kick(room.name, m.identity) } }, 'Kick'),
        personalOwner ? null : h('button', { type: 'button', class: 'small danger', on: { click: () => removeMember(room.name, m.identity) } }, 'Remove')));
  }
  const body = h('div', { class: 'room-body' },
    h('div', { class: 'inline-form' },
      field('Message request mode', modeSelect),
      modeButton),
    h('h3', null, 'Members'),
    h('div', { class: 'toolbar' }, h('span', { class: 'muted small' }, 'Mute for'), muteAmount, muteUnit),
    memberTable,
    addForm, addError);
  const placeholder = h('div', { class: 'placeholder' }, h('h2', null, 'No room selected'),
    h('p', { class: 'muted' }, 'Pick a room in the list, or create one.'));
  let shownRoom = null;
  let shownMode = null;
  let signature = '';

  function renderDetail() {
    if (!selected || !roomInfo) {
      shownRoom = null;
      signature = '';
      fill(detail, placeholder);
      return;
    }
    const room = roomInfo;
    if (shownRoom !== room.name) {
      shownRoom = room.name;
      idInput.value = '';
      addError.hidden = true;
      fill(detail, head, meta, body);
      shownMode = null;
    }
    if (shownMode !== room.mode) {
      shownMode = room.mode;
      modeSelect.value = room.mode;
    }
    const next = JSON.stringify([room, members, (store.get('clients') || []).map((c) => c.identity)]);
    if (next === signature) return;
    signature = next;

    fill(head,
      h('h2', null, h('span', { class: 'ident', id: 'room-detail-name' }, room.name),
        room.personal ? badge('personal') : null, badge(room.mode, 'accent')),
      room.name !== MONITOR_ROOM
        ? h('button', { type: 'button', class: 'danger', id: 'room-delete', on: { click: () => remove(room.name) } }, 'Delete room')
        : null);
    text(meta, `created ${time(room.createdAt)}${room.createdBy ? ` by ${room.createdBy}` : ''} · ${members.length} member(s)`);

    memberList.set(members);

    // connected identities are offered; any identity may be typed
    const known = (store.get('clients') || []).map((c) => c.identity).filter((i) => !members.some((m) => m.identity === i));
    fill(datalist, known.map((i) => h('option', { value: i })));
  }

  /** A connected, trusted or once-seen identity. */
  async function known(identity) {
    if ((store.get('clients') || []).some((c) => c.identity === identity)) return true;
    if ((store.get('trust') || []).some((t) => t.clientId === identity)) return true;
    try {
      const [ids, trust] = await Promise.all([
        ctx.call('/clients', MSG_TYPE.GET_IDENTITIES),
        ctx.call('/clients', MSG_TYPE.GET_TRUSTED_CLIENTS),
      ]);
      return ids.identities.some((i) => i.identity === identity) || trust.clients.some((t) => t.clientId === identity);
    } catch {
      return true; // cannot tell: the server still checks what it must
    }
  }

  async function remove(name) {
    const yes = await confirmAction('Delete room', `Delete ${name}? Its memberships, mutes and whole history are deleted with it.`, 'Delete room');
    if (!yes) return;
    const ack = await attempt('Delete room', () => ctx.call('/rooms', MSG_TYPE.DELETE_ROOM, { roomName: name }));
    if (!ack) return;
    ok(`Room ${name} deleted.`);
    if (selected === name) { selected = null; roomInfo = null; members = []; }
    await ctx.refresh.roomsNow();
    renderDetail();
  }

  async function mute(room, identity) {
    const duration = muteSeconds();
    const payload = { targetIdentity: identity, roomName: room };
    if (duration > 0) payload.duration = duration;
    const ack = await attempt('Mute', () => ctx.call('/rooms', MSG_TYPE.MUTE_MEMBER, payload));
    if (!ack) return;
    loadMembers(); // the member list carries the mute as the server keeps it
    ok(ack.duration === 'permanent' ? `${identity} is muted in ${room}.` : `${identity} is muted in ${room} for ${ack.duration} s.`);
  }

  async function unmute(room, identity) {
    const ack = await attempt('Unmute', () => ctx.call('/rooms', MSG_TYPE.UNMUTE_MEMBER, { targetIdentity: identity, roomName: room }));
    if (!ack) return;
    loadMembers();
    ok(ack.message || `${identity} is unmuted in ${room}.`);
  }

  async function kick(room, identity) {
    const yes = await confirmAction('Kick member', `Kick ${identity} out of ${room}? They are told they were kicked.`, 'Kick');
    if (!yes) return;
    const ack = await attempt('Kick', () => ctx.call('/rooms', MSG_TYPE.KICK_MEMBER, { targetIdentity: identity, roomName: room }));
    if (ack) ok(`${identity} was kicked from ${room}.`);
    loadMembers();
    ctx.refresh.rooms();
  }

  async function removeMember(room, identity) {
    const yes = await confirmAction('Remove member', `Remove ${identity} from ${room}?`, 'Remove');
    if (!yes) return;
    const ack = await attempt('Remove member', () => ctx.call('/rooms', MSG_TYPE.REMOVE_CLIENT_FROM_ROOM, { identity, roomName: room }));
    if (ack) ok(`${identity} left ${room}.`);
    loadMembers();
    ctx.refresh.rooms();
  }

  store.watch('rooms', (rooms) => {
    renderList();
    if (selected && !rooms.some((r) => r.name === selected)) { selected = null; roomInfo = null; members = []; }
    // member lists change with joins, leaves and roles; keep the open room fresh
    if (selected && !section.hidden) loadMembers(); else renderDetail();
  });
  store.watch('clients', () => { if (selected) renderDetail(); }, { now: false });
  renderDetail();
  section.onShow = (arg) => {
    if (arg && arg !== selected) choose(arg); else loadMembers();
  };
  return section;
}

export default { id: 'rooms', create };
