// Clients: connected sessions (disconnect), trust list (add, remove), keys
// (generate: shown once with a copy button; revoke).

import { CLIENT_KIND, MSG_TYPE } from '/lib/constants.js';
import { badge, debounce, field, fill, h, select, table, time } from '../dom.js';
import * as store from '../store.js';
import { describe, kindBadge } from '../model.js';
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
  const connected = h('div', { id: 'clients-connected' });
  const trusted = h('div', { id: 'clients-trusted' });
  const formError = h('p', { class: 'form-error', role: 'alert', hidden: true });

  const idInput = h('input', { id: 'trust-client-id', name: 'clientId', required: true, spellcheck: 'false', autocomplete: 'off', placeholder: 'e.g. web-app-1' });
  const typeSelect = select(TYPES, CLIENT_KIND.CLIENT, { id: 'trust-client-type', name: 'clientType' });
  const password = h('input', { id: 'trust-password', name: 'password', type: 'password', autocomplete: 'new-password', placeholder: 'optional' });
  const remember = h('input', { id: 'trust-remember', name: 'rememberMe', type: 'checkbox' });
  const form = h('form', { class: 'inline-form', id: 'trust-form' },
    field('clientId', idInput),
    field('Type', typeSelect),
    field('Password', password),
    h('label', { class: 'check' }, remember, ' Remember me'),
    h('button', { type: 'submit', class: 'primary' }, 'Trust client'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const payload = { clientId: idInput.value.trim(), clientType: typeSelect.value };
    if (password.value) payload.password = password.value;
    if (remember.checked) payload.rememberMe = true;
    const ack = await attemptInline(formError, () => ctx.call('/clients', MSG_TYPE.ADD_TRUSTED_CLIENT, payload));
    if (!ack) return;
    ok(`${payload.clientId} is trusted.`);
    form.reset();
    loadTrust();
  });

  const refreshButton = h('button', { type: 'button', on: { click: () => loadTrust() } }, 'Refresh');
  const section = h('section', { 'aria-labelledby': 'clients-title' },
    h('div', { class: 'view-head' }, h('h1', { id: 'clients-title' }, 'Clients')),
    h('div', { class: 'card' }, h('h2', null, 'Connected now'), connected),
    h('div', { class: 'card' },
      h('div', { class: 'card-head' }, h('h2', null, 'Trusted clients and keys'), refreshButton),
      trusted),
    h('div', { class: 'card' }, h('h2', null, 'Trust a client'),
      h('p', { class: 'muted small' }, 'Extensions need a clientId starting with "SillyTavern". A password lets an extension fetch its own key.'),
      form, formError));

  // ---------------------------------------------------------------- connected
  const renderConnected = () => {
    const list = store.get('clients') || [];
    fill(connected, table(
      [{ label: 'Identity' }, { label: 'clientId' }, { label: 'Type' }, { label: 'Description' }, { label: 'Connected' }, { label: '', class: 'actions' }],
      list.map((c) => h('tr', { dataset: { identity: c.identity } },
        h('td', null, h('span', { class: 'ident' }, c.identity), c.identity === ctx.me ? badge('you', 'ok') : null),
        h('td', null, c.principal ?? c.identity),
        h('td', null, kindBadge(c)),
        h('td', { class: 'desc' }, describe(c)),
        h('td', { class: 'nowrap' }, time(c.connectedAt)),
        h('td', { class: 'actions' }, h('button', {
          type: 'button', class: 'danger small',
          on: { click: () => disconnect(c.identity) },
        }, 'Disconnect')))),
      { empty: 'Nobody is connected.', class: 'data' }));
  };

  async function disconnect(identity) {
    const yes = await confirmAction('Disconnect client', `Close every socket of ${identity}? It may reconnect with its key.`, 'Disconnect');
    if (!yes) return;
    const ack = await attempt('Disconnect', () => ctx.call('/clients', MSG_TYPE.DISCONNECT_CLIENT, { identity }));
    if (ack) ok(`${identity}: ${ack.disconnected} socket(s) closed.`);
  }

  // ---------------------------------------------------------------- trust and keys
  let loading = false;
  async function loadTrust() {
    if (loading) return;
    loading = true;
    try {
      const [trust, keys] = await Promise.all([
        ctx.call('/clients', MSG_TYPE.GET_TRUSTED_CLIENTS),
        ctx.call('/clients', MSG_TYPE.GET_ALL_CLIENT_KEYS),
      ]);
      renderTrust(trust.clients || [], keys.keys || {});
    } catch (err) {
      fill(trusted, h('p', { class: 'form-error' }, `Cannot load the trust list: ${err.message}`));
    } finally {
      loading = false;
    }
  }

  function renderTrust(entries, keys) {
    const rows = entries.map((t) => {
      const key = keys[t.clientId];
      const actions = h('td', { class: 'actions' },
        h('button', { type: 'button', class: 'small', on: { click: () => generate(t.clientId) } }, key ? 'New key' : 'Generate key'),
        key ? h('button', { type: 'button', class: 'small danger', on: { click: () => revoke(t.clientId) } }, 'Revoke key') : null,
        t.isTrust
          ? h('button', { type: 'button', class: 'small danger', on: { click: () => untrust(t.clientId) } }, 'Remove trust')
          : h('button', { type: 'button', class: 'small', on: { click: () => retrust(t) } }, 'Trust again'));
      return h('tr', { dataset: { clientId: t.clientId } },
        h('td', null, h('span', { class: 'ident' }, t.clientId)),
        h('td', { title: t.clientType }, kindBadge(t)),
        h('td', null, t.isTrust ? badge('trusted', 'ok') : badge('not trusted', 'danger')),
        h('td', null, t.hasPassword ? 'yes' : 'no'),
        keyCell(key),
        actions);
    });
    // keys of clientIds without a trust entry (e.g. made by the CLI)
    for (const [id, key] of Object.entries(keys)) {
      if (entries.some((t) => t.clientId === id)) continue;
      rows.push(h('tr', { dataset: { clientId: id } },
        h('td', null, h('span', { class: 'ident' }, id)), h('td', null, '–'), h('td', null, badge('no trust entry', 'danger')),
        h('td', null, '–'), keyCell(key),
        h('td', { class: 'actions' }, h('button', { type: 'button', class: 'small danger', on: { click: () => revoke(id) } }, 'Revoke key'))));
    }
    fill(trusted, table(
      [{ label: 'clientId' }, { label: 'Type' }, { label: 'Trust' }, { label: 'Password' }, { label: 'Key' }, { label: '', class: 'actions' }],
      rows, { empty: 'No trusted clients.', class: 'data', id: 'trust-table' }));
  }

  async function generate(clientId) {
    const ack = await attempt('Generate key', () => ctx.call('/clients', MSG_TYPE.GENERATE_CLIENT_KEY, { targetClientId: clientId }));
    if (!ack) return;
    showKeyOnce(ack);
    loadTrust();
  }

  async function revoke(clientId) {
    const yes = await confirmAction('Revoke key', `Revoke the key of ${clientId}? Its connections are closed at once.`, 'Revoke');
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

  const loadTrustSoon = debounce(loadTrust, 300);
  store.watch('clients', () => {
    renderConnected();
    if (!section.hidden) loadTrustSoon();
  });
  section.onShow = loadTrust;
  return section;
}

export default { id: 'clients', create };
