// Logs and debug: READ_LOG with file, level filter and paging; debug mode.

import { MSG_TYPE } from '/lib/constants.js';
import { debounce, field, fill, h, select, text } from '../dom.js';
import * as store from '../store.js';
import { attempt, ok } from '../ui.js';

const FILES = ['combined.log', 'error.log', 'warn.log', 'info.log'];
const LEVELS = ['all', 'error', 'warn', 'info', 'debug'];
const SIZES = ['10', '25', '50', '100'];
const ENTRY = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} - (\w+) - /;

function create(ctx) {
  let page = 1;
  let total = 0;
  let busy = false;

  const file = select(FILES, 'combined.log', { id: 'log-file', 'aria-label': 'Log file' });
  const level = select(LEVELS, 'all', { id: 'log-level', 'aria-label': 'Level' });
  const size = select(SIZES, '25', { id: 'log-size', 'aria-label': 'Entries per page' });
  const search = h('input', { type: 'search', id: 'log-search', placeholder: 'Search', 'aria-label': 'Search the log', autocomplete: 'off' });
  const readButton = h('button', { type: 'button', class: 'primary', id: 'log-read' }, 'Read');
  const auto = h('input', { type: 'checkbox', id: 'log-auto' });
  const newer = h('button', { type: 'button', id: 'log-newer' }, '← Newer');
  const olderButton = h('button', { type: 'button', id: 'log-older' }, 'Older →');
  const where = h('span', { class: 'muted small', id: 'log-where' });
  const newerBottom = h('button', { type: 'button' }, '← Newer');
  const olderBottom = h('button', { type: 'button' }, 'Older →');
  const whereBottom = h('span', { class: 'muted small' });
  const entries = h('div', { class: 'log-entries', id: 'log-entries' });
  const error = h('p', { class: 'form-error', role: 'alert', hidden: true, id: 'log-error' });

  const debugState = h('strong', { id: 'debug-state' }, '–');
  const debugButton = h('button', { type: 'button', id: 'debug-toggle', 'aria-pressed': 'false' }, 'Toggle debug mode');
  const logLevel = h('span', { class: 'muted small', id: 'debug-level' });

  const section = h('section', { 'aria-labelledby': 'logs-title' },
    h('div', { class: 'view-head' }, h('h1', { id: 'logs-title' }, 'Logs & debug')),
    h('div', { class: 'card debug-card' },
      h('div', { class: 'card-head' },
        h('div', null, h('h2', null, 'Debug mode'), h('p', { class: 'debug-line' }, 'Debug mode is ', debugState, '. ', logLevel)),
        debugButton),
      h('p', { class: 'muted small' }, 'While on, the server logs at debug level (persisted in the settings); every admin page sees the change.')),
    h('div', { class: 'card' },
      h('h2', null, 'Server logs'),
      h('div', { class: 'toolbar wrap' },
        field('File', file, { class: 'inline' }),
        field('Level', level, { class: 'inline' }),
        field('Per page', size, { class: 'inline' }),
        search,
        readButton,
        h('label', { class: 'check' }, auto, ' follow (page 1, every 5 s)')),
      error,
      h('div', { class: 'pager' }, newer, where, olderButton),
      entries,
      h('div', { class: 'pager' }, newerBottom, whereBottom, olderBottom),
      h('p', { class: 'muted small' }, 'Newest entries first. Page 1 is the end of the file.')));

  async function read({ quiet = false } = {}) {
    if (busy) return;
    busy = true;
    if (!quiet) error.hidden = true;
    try {
      const ack = await ctx.call('/debug', MSG_TYPE.READ_LOG, {
        filename: file.value, level: level.value, page, pageSize: Number(size.value),
        search: search.value.trim() || undefined,
      });
      error.hidden = true;
      total = ack.total || 0;
      render(ack.lines || []);
    } catch (err) {
      text(error, err.message);
      error.hidden = false;
      if (!quiet) { fill(entries); total = 0; render([]); }
    } finally {
      busy = false;
    }
  }

  function render(lines) {
    const pages = Math.max(1, Math.ceil(total / Number(size.value)));
    text(where, `page ${page} of ${pages} · ${total} entr${total === 1 ? 'y' : 'ies'}`);
    text(whereBottom, where.textContent);
    newer.disabled = newerBottom.disabled = page <= 1;
    olderButton.disabled = olderBottom.disabled = page >= pages;
    if (!lines.length) {
      fill(entries, h('p', { class: 'muted empty-log' }, total ? 'Nothing on this page.' : 'No entries.'));
      return;
    }
    fill(entries, [...lines].reverse().map((line) => {
      const m = ENTRY.exec(line);
      const lvl = m ? m[1].toLowerCase() : 'none';
      return h('pre', { class: ['log-entry', `lvl-${lvl}`] }, line);
    }));
  }

  const restart = () => { page = 1; read(); };
  readButton.addEventListener('click', restart);
  file.addEventListener('change', restart);
  level.addEventListener('change', restart);
  size.addEventListener('change', restart);
  search.addEventListener('input', debounce(restart, 300));
  const goNewer = () => { if (page > 1) { page -= 1; read(); } };
  const goOlder = () => { page += 1; read(); };
  newer.addEventListener('click', goNewer);
  newerBottom.addEventListener('click', goNewer);
  olderButton.addEventListener('click', goOlder);
  olderBottom.addEventListener('click', goOlder);
  setInterval(() => {
    if (auto.checked && page === 1 && !section.hidden) read({ quiet: true });
  }, 5000);

  debugButton.addEventListener('click', async () => {
    debugButton.disabled = true;
    const ack = await attempt('Debug mode', () => ctx.call('/debug', MSG_TYPE.TOGGLE_DEBUG_MODE));
    debugButton.disabled = false;
    if (!ack) return;
    store.set('debugMode', !!ack.debugMode);
    ok(`Debug mode ${ack.debugMode ? 'on' : 'off'}.`);
    ctx.refresh.status();
  });
  store.watch('debugMode', (on) => {
    text(debugState, on ? 'on' : 'off');
    debugState.className = on ? 'on' : 'off';
    debugButton.setAttribute('aria-pressed', String(on));
    text(debugButton, on ? 'Turn debug mode off' : 'Turn debug mode on');
  });
  store.watch('status', (s) => text(logLevel, s.logLevel ? `Live log level: ${s.logLevel}.` : ''));

  section.onShow = () => read();
  return section;
}

export default { id: 'logs', create };
