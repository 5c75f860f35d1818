// Small derived views of the shared state.

import * as store from './store.js';
import { badge } from './dom.js';

export const MONITOR_ROOM = 'monitor-room';
export const ROLES = ['master', 'manager', 'guest'];
export const MODES = ['Immediate', 'HostSubmit', 'MasterOnly', 'Conversational'];
export const POLICIES = ['Free', 'Manual', 'Balanced', 'Broadcast', 'Random'];

/** Rooms an identity belongs to, its own personal room left out. */
export function roomsOf(identity) {
  const rooms = store.get('rooms') || [];
  return rooms
    .filter((r) => Array.isArray(r.members) && r.members.includes(identity))
    .filter((r) => !(r.personal && r.name === identity))
    .map((r) => r.name);
}

export function kindBadge(item) {
  const kind = item.kind || item.clientType;
  if (kind === 'SillyTavern') return badge('extension', 'accent');
  if (kind === 'monitor') return badge('admin', 'warn');
  return badge('client', '');
}

export function describe(item) {
  const d = item.desc ?? item.description ?? item.clientDesc;
  return d === null || d === undefined || d === '' ? '–' : String(d);
}

export function isMuted(identity, room) {
  return store.mutes.has(store.muteKey(identity, room)) || store.mutes.has(store.muteKey(identity, null));
}

/** Text of a history message, whatever shape it came in. */
export function messageText(m) {
  if (!m) return '';
  if (typeof m.message === 'string') return m.message;
  if (typeof m.data === 'string') return m.data;
  if (m.data && typeof m.data === 'object') {
    if (typeof m.data.text === 'string') return m.data.text;
    if (typeof m.data.prompt === 'string') return m.data.prompt;
  }
  if (typeof m.prompt === 'string') return m.prompt;
  try { return JSON.stringify(m.data ?? m); } catch { return ''; }
}
