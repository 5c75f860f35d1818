// Toasts, confirmation and the "shown once" key dialog.

import { $, h, text, time } from './dom.js';

export function toast(message, kind = 'info', { timeout } = {}) {
  const box = $('#toasts');
  const close = h('button', { type: 'button', class: 'toast-close', 'aria-label': 'Dismiss' }, '×');
  const el = h('div', { class: ['toast', kind], role: kind === 'error' ? 'alert' : 'status' },
    h('span', { class: 'toast-text' }, message), close);
  const remove = () => el.remove();
  close.addEventListener('click', remove);
  box.appendChild(el);
  setTimeout(remove, timeout ?? (kind === 'error' ? 10000 : 3500));
  while (box.children.length > 3) box.firstElementChild.remove();
  return el;
}

export const ok = (message) => toast(message, 'ok');
export const fail = (what, err) => toast(`${what}: ${err && err.message ? err.message : err}`, 'error');

/** Run an action, toasting its error; returns its result or undefined. */
export async function attempt(what, fn) {
  try {
    return await fn();
  } catch (err) {
    fail(what, err);
    return undefined;
  }
}

/** Run a form's action, its error shown in `errEl` (hidden first); returns its result or undefined. */
export async function attemptInline(errEl, fn) {
  errEl.hidden = true;
  try {
    return await fn();
  } catch (err) {
    text(errEl, err && err.message ? err.message : err);
    errEl.hidden = false;
    return undefined;
  }
}

/** A modal yes/no. Resolves true when confirmed. */
export function confirmAction(title, message, okLabel = 'Confirm') {
  const dialog = $('#confirm-dialog');
  text($('#confirm-title'), title);
  text($('#confirm-text'), message);
  text($('#confirm-ok'), okLabel);
  dialog.returnValue = '';
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true });
    dialog.showModal();
  });
}

/** Show a freshly generated key once, with a copy button. */
export function showKeyOnce({ clientId, key, fingerprint, createdAt, trusted }) {
  const dialog = $('#key-dialog');
  const input = $('#key-value');
  const copy = $('#key-copy');
  text($('#key-client'), clientId);
  input.value = key;
  text(copy, 'Copy');
  const meta = [`fingerprint ${fingerprint || '–'}`];
  if (createdAt) meta.push(`created ${time(createdAt)}`);
  if (trusted === false) meta.push(`${clientId} is not trusted yet: the key works once it is trusted.`);
  text($('#key-meta'), meta.join(' · '));
  const onCopy = async () => {
    let copied = false;
    try {
      await navigator.clipboard.writeText(input.value);
      copied = true;
    } catch {
      input.select();
      try { copied = document.execCommand('copy'); } catch { copied = false; }
    }
    text(copy, copied ? 'Copied' : 'Select and copy');
    if (!copied) input.select();
  };
  copy.onclick = onCopy;
  dialog.addEventListener('close', () => {
    input.value = ''; // gone from the page once the dialog closes
    copy.onclick = null;
  }, { once: true });
  dialog.showModal();
  input.focus();
  input.select();
}
