// Clients: connected sessions (disconnect), trust list (add, remove), keys
// (generate: shown once with a copy button; revoke). Both lists search,
// sort and page; #/clients/<clientId> opens the page holding that entry.

import { CLIENT_KIND, MSG_TYPE } from '/lib/constants.js';
import { badge, debounce, field, fill, h, select, time } from '../dom.js';
import * as store from '../store.js';
import { describe, kindBadge } from '../model.js';
import { pagedTable } from '../list.js';
import { attempt, attemptInline, confirmAction, ok, showKeyOnce } from '../ui.js';

const KIND_NOTES = { [CLIENT_KIND.CLIENT]: 'plain', [CLIENT_KIND.SILLYTAVERN]: 'extension', [CLIENT_KIND.MONITOR]: 'admin' };
const TYPES = Object.values(CLIENT_KIND).map((k) => [k, KIND_NOTES[k] ? `${k} (${KIND_NOTES[k]})` : k]);

/** The key column: fingerprint and last use, or "no key". */
function keyCell(key) {
  return h('td', { class: 'key-cell' }, key
    ? [h('code', { class: 'fingerprint', title: `fingerprint; key created ${time(key.createdAt)}` }, key.fingerprint),
      h('div', { class: 'muted small nowrap' }, key.lastUsedAt ? `used ${time(key.lastUsedAt)}` : 'never used')]
    : h('span', { class: 'muted' }, 'no key'));
}

function create(ctx) {
  const formError = h('p', { class: 'form-error', role: 'alert', hidden: true });
  const idInput = h('input', { id: 'trust-client-id', name: 'clientId', required: true, spellcheck: 'false', autocomplete: 'off', placeholder: 'e.g. web-app-1' });
  const typeSelect = select(TYPES, CLIENT_KIND.CLIENT, { id: 'trust-client-type', name: 'clientType' });
  const password = h('input', { id: 'trust-password', name: 'password', type: 'password', autocomplete: 'new-password', placeholder: 'optional' });
  const remember = h('input', { id: 'trust-remember', name: 'rememberMe', type: 'checkbox' });
  const withKey = h('input', { id: 'trust-with-key', name: 'withKey', type: 'checkbox' });
  const form = h('form', { class: 'inline-form', id: 'trust-form' },
    field('clientId', idInput),
    field('Type', typeSelect),
    field('Password', password),
    h('label', { class: 'check' }, remember, ' Remember me'),
    h('label', { class: 'check' }, withKey, ' and generate its key'),
    h('button', { type: 'submit', class: 'primary' }, 'Trust client'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const payload = { clientId: idInput.value.trim(), clientType: typeSelect.value };
    if (password.value) payload.password = password.value;
    if (remember.checked) payload.rememberMe = true;
    const ack = await attemptInline(formError, () => ctx.call('/clients', MSG_TYPE.ADD_TRUSTED_CLIENT, payload));
    if (!ack) return;
    ok(`${payload.clientId} is trusted.`);
    const alsoKey = withKey.checked;
    form.reset();
    if (alsoKey) await generate(payload.clientId, false);
    else loadTrust();
  });

  // ---------------------------------------------------------------- connected
  const connected = pagedTable({
    id: 'connected-table',
    columns: [
      { label: 'Identity', sort: (c) => c.identity }, { label: 'clientId', sort: (c) => c.principal ?? c.identity },
      { label: 'Type', sort: (c) => c.kind || '' }, { label: 'Description' },
      { label: 'Connected', sort: (c) => c.connectedAt || '' }, { label: '', class: 'actions' }],
    key: (c) => c.identity,
    search: (c) => `${c.identity} ${c.principal ?? ''} ${c.clientType ?? ''} ${describe(c)}`,
    empty: 'Nobody is connected.',
    row: (c) => h('tr', { dataset: { identity: c.identity } },
      h('td', null, h('span', { class: 'ident' }, c.identity), c.identity === ctx.me ? badge('you', 'ok') : null),
      h('td', null, c.principal ?? c.identity),
      h('td', null, kindBadge(c)),
      h('td', { class: 'desc' }, describe(c)),
      h('td', { class: 'nowrap' }, time(c.connectedAt)),
      h('td', { class: 'actions' }, h('button', {
        type: 'button', class: 'danger small',
        on: { click: () => disconnect(c.identity) },
      }, 'Disconnect'))),
  });

  // ---------------------------------------------------------------- trust and keys

  const trustState = select([['all', 'all entries'], ['trusted', 'trusted'], ['untrusted', 'not trusted'], ['nokey', 'without key']], 'all', { id: 'trust-filter', 'aria-label': 'Show' });
  const trust = pagedTable({
    id: 'trust-table',
    columns: [
      { label: 'clientId', sort: (t) => t.clientId }, { label: 'Type', sort: (t) => t.clientType || '' },
      { label: 'Trust', sort: (t) => (t.isTrust ? 0 : 1) }, { label: 'Password' },
      { label: 'Key', sort: (t) => (t.key && t.key.lastUsedAt) || '' }, { label: '', class: 'actions' }],
    key: (t) => t.clientId,
    search: (t) => `${t.clientId} ${t.clientType || ''}`,
    empty: 'No trusted clients.',
    filters: [trustState],
    accept: (t) => {
      const v = trustState.value;
      if (v === 'trusted') return !!t.isTrust;
      if (v === 'untrusted') return !t.isTrust;
      if (v === 'nokey') return !t.key;
      return true;
    },
    row: (t) => {
      const { key } = t;
      if (t.orphan) {
        return h('tr', { dataset: { clientId: t.clientId } },
          h('td', null, h('span', { class: 'ident' }, t.clientId)), h('td', null, '–'), h('td', null, badge('no trust entry', 'danger')),
          h('td', null, '–'), keyCell(key),
          h('td', { class: 'actions' }, h('button', { type: 'button', class: 'small danger', on: { click: () => revoke(t.clientId) } }, 'Revoke key')));
      }
      return h('tr', { dataset: { clientId: t.clientId }, class: t.clientId === focus ? 'selected' : null },
        h('td', null, h('span', { class: 'ident' }, t.clientId), t.clientId === ctx.me ? badge('you', 'ok') : null),
        h('td', { title: t.clientType }, kindBadge(t)),
        h('td', null, t.isTrust ? badge('trusted', 'ok') : badge('not trusted', 'danger')),
        h('td', null, t.hasPassword ? 'yes' : 'no'),
        keyCell(key),
        h('td', { class: 'actions' },
          h('button', { type: 'button', class: 'small', on: { click: () => generate(t.clientId, !!key) } }, key ? 'New key' : 'Generate key'),
          key ? h('button', { type: 'button', class: 'small danger', on: { click: () => revoke(t.clientId) } }, 'Revoke key') : null,
          t.isTrust
            ? h('button', { type: 'button', class: 'small danger', on: { click: () => untrust(t.clientId) } }, 'Remove trust')
            : h('button', { type: 'button', class: 'small', on: { click: () => retrust(t) } }, 'Trust again')));
    },
  });
  trustState.addEventListener('change', () => trust.reset());
  let focus = null;

  const refreshButton = h('button', { type: 'button', id: 'trust-refresh', on: { click: () => loadTrust() } }, 'Refresh');
  const section = h('section', { 'aria-labelledby': 'clients-title' },
    h('div', { class: 'view-head' }, h('h1', { id: 'clients-title' }, 'Clients')),
    h('div', { class: 'card' }, h('h2', null, 'Connected now'), h('div', { id: 'clients-connected' }, connected.el)),
    h('div', { class: 'card' },
      h('div', { class: 'card-head' }, h('h2', null, 'Trusted clients and keys'), refreshButton),
      h('div', { id: 'clients-trusted' }, trust.el)),
    h('div', { class: 'card' }, h('h2', null, 'Trust a client'),
      h('p', { class: 'muted small' }, 'Extensions need a clientId starting with "SillyTavern". A password lets an extension fetch its own key.'),
      form, formError));

  async function disconnect(identity) {
    const yes = await confirmAction('Disconnect client', `Close every socket of ${identity}? It may reconnect with its key.`, 'Disconnect');
    if (!yes) return;
    const ack = await attempt('Disconnect', () => ctx.call('/clients', MSG_TYPE.DISCONNECT_CLIENT, { identity }));
    if (ack) ok(`${identity}: ${ack.disconnected} socket(s) closed.`);
  }

  let loading = null;
  function loadTrust() {
    // one load at a time; a request during a load is answered by that load
    loading = loading || (async () => {
      try {
        const [t, k] = await Promise.all([
          ctx.call('/clients', MSG_TYPE.GET_TRUSTED_CLIENTS),
          ctx.call('/clients', MSG_TYPE.GET_ALL_CLIENT_KEYS),
        ]);
        const keys = k.keys || {};
        // each row carries its key, so a new or revoked key redraws the row
        const entries = (t.clients || []).map((e) => ({ ...e, key: keys[e.clientId] || null }));
        const known = new Set(entries.map((e) => e.clientId));
        // keys of clientIds without a trust entry (e.g. made by the CLI)
        for (const id of Object.keys(keys)) if (!known.has(id)) entries.push({ clientId: id, orphan: true, key: keys[id] });
        trust.set(entries);
        store.set('trust', entries);
      } catch (err) {
        fill(section.querySelector('#clients-trusted'), h('p', { class: 'form-error' }, `Cannot load the trust list: ${err.message}`), trust.el);
      } finally {
        loading = null;
      }
    })();
    return loading;
  }

  async function generate(clientId, replacing) {
    if (replacing) {
      const yes = await confirmAction('Replace key', `${clientId} already has a key. A new key replaces it: whoever uses the old one is disconnected and must be given the new one.`, 'Replace key');
      if (!yes) return;
    }
    const ack = await attempt('Generate key', () => ctx.call('/clients', MSG_TYPE.GENERATE_CLIENT_KEY, { targetClientId: clientId }));
    if (!ack) return;
    showKeyOnce(ack);
    loadTrust();
  }

  async function revoke(clientId) {
    const own = clientId === ctx.me;
    const yes = own
      ? await confirmAction('Revoke your own key', `This is the key this page signed in with. Revoking it closes this page's connection at once and you must sign in with another admin key.`, 'Revoke my key')
      : await confirmAction('Revoke key', `Revoke the key of ${clientId}? Its connections are closed at once.`, 'Revoke');
    if (!yes) return;
    const ack = await attempt('Revoke key', () => ctx.call('/clients', MSG_TYPE.REMOVE_CLIENT_KEY, { targetClientId: clientId }));
    if (ack) ok(ack.message || `Key of ${clientId} revoked; ${ack.disconnected} socket(s) closed.`);
    loadTrust();
  }

  async function untrust(clientId) {
    const yes = await confirmAction('Remove trust', `Stop trusting ${clientId}? Its connections are closed at once.`, 'Remove trust');
    if (!yes) return;
    const ack = await attempt('Remove trust', () => ctx.call('/clients', MSG_TYPE.REMOVE_TRUSTED_CLIENT, { clientId }));
    if (ack) ok(ack.message || `${clientId} is no longer trusted; ${ack.disconnected} socket(s) closed.`);
    loadTrust();
  }

  async function retrust(entry) {
    const ack = await attempt('Trust', () => ctx.call('/clients', MSG_TYPE.ADD_TRUSTED_CLIENT, { clientId: entry.clientId, clientType: entry.clientType }));
    if (ack) ok(`${entry.clientId} is trusted.`);
    loadTrust();
  }

  // connects and disconnects move keys' "last used": a quiet reload, and
  // only the page shown is redrawn when something on it changed
  const loadTrustSoon = debounce(loadTrust, 1000);
  store.watch('clients', (list) => {
    connected.set(list || []);
    if (!section.hidden) loadTrustSoon();
  });
  section.onShow = async (arg) => {
    focus = arg || null;
    await loadTrust();
    if (focus) {
      trust.show(focus);
      const row = section.querySelector(`#trust-table tr[data-client-id="${CSS.escape(focus)}"]`);
      if (row) row.scrollIntoView({ block: 'center' });
    }
  };
  return section;
}

export default { id: 'clients', create };
