// Small derived views of the shared state.

import * as store from './store.js';
import { badge, clock } from './dom.js';
import * as wire from '/lib/constants.js';

export { MONITOR_ROOM } from '/lib/constants.js';
export const ROLES = Object.values(wire.ROLES);
export const MODES = Object.values(wire.MODES);
export const POLICIES = Object.values(wire.POLICIES);

/** Rooms an identity belongs to, its own personal room left out. */
export function roomsOf(identity) {
  const rooms = store.get('rooms') || [];
  return rooms
    .filter((r) => Array.isArray(r.members) && r.members.includes(identity))
    .filter((r) => !(r.personal && r.name === identity))
    .map((r) => r.name);
}

export const isExtension = (item) => item.kind === wire.CLIENT_KIND.SILLYTAVERN;

export function kindBadge(item) {
  const kind = item.kind || item.clientType;
  if (kind === wire.CLIENT_KIND.SILLYTAVERN) return badge('extension', 'accent');
  if (kind === wire.CLIENT_KIND.MONITOR) return badge('admin', 'warn');
  return badge('client', '');
}

export function describe(item) {
  const d = item.desc ?? item.description ?? item.clientDesc;
  return d === null || d === undefined || d === '' ? '–' : String(d);
}

/** A room member's mute as the server reports it (GET_CLIENTS_IN_ROOM): null when not muted. */
export function muteLabel(member) {
  if (!member.muted) return null;
  const until = member.mutedUntil;
  return until && until !== wire.FOREVER ? `muted until ${clock(until)}` : 'muted';
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
