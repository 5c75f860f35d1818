// A searchable, sortable, paged table. Only the rows of the page shown are
// built, so a list of thousands costs what fifty rows cost; a new list with
// the same rows (a live refresh) leaves the DOM alone.

import { h, fill, text, table } from './dom.js';

/**
 * pagedTable({id, columns: [{label, class?, sort?: (item) => value}], row: (item) => <tr>,
 *   key: (item) => string, search: (item) => string, pageSize?, empty?, filters?: [elements]})
 * returns {el, set(items), refresh(), reset(), show(key)}.
 */
export function pagedTable({ id, columns, row, key, search, pageSize = 50, empty = 'Nothing here yet.', filters = [], accept = () => true }) {
  let items = [];
  let page = 0;
  let sortBy = -1;
  let sortDir = 1;
  let signature = '';
  const query = h('input', { type: 'search', id: `${id}-search`, placeholder: 'Search', 'aria-label': 'Search', autocomplete: 'off' });
  const where = h('span', { class: 'muted small pager-where', id: `${id}-where` });
  const prev = h('button', { type: 'button', class: 'small', id: `${id}-prev`, 'aria-label': 'Previous page' }, '‹ Prev');
  const next = h('button', { type: 'button', class: 'small', id: `${id}-next`, 'aria-label': 'Next page' }, 'Next ›');
  const body = h('div');
  const el = h('div', { class: 'paged', id: `${id}-paged` },
    h('div', { class: 'toolbar' }, query, ...filters, h('span', { class: 'spacer' }), where, prev, next),
    body);

  const matching = () => {
    const q = query.value.trim().toLowerCase();
    let list = items.filter((item) => accept(item) && (!q || search(item).toLowerCase().includes(q)));
    if (sortBy >= 0) {
      const value = columns[sortBy].sort;
      list = [...list].sort((a, b) => {
        const x = value(a); const y = value(b);
        return (x < y ? -1 : x > y ? 1 : 0) * sortDir;
      });
    }
    return list;
  };

  function render(force = false) {
    const list = matching();
    const pages = Math.max(1, Math.ceil(list.length / pageSize));
    page = Math.min(page, pages - 1);
    const shown = list.slice(page * pageSize, (page + 1) * pageSize);
    const next_ = JSON.stringify([sortBy, sortDir, page, shown.map(key), shown]);
    const label = list.length ? `${page * pageSize + 1}–${page * pageSize + shown.length} of ${list.length}` : '0 of 0';
    if (where.textContent !== label) text(where, label);
    prev.disabled = page === 0;
    next.disabled = page >= pages - 1;
    if (!force && next_ === signature) return;
    signature = next_;
    const heads = columns.map((c, i) => {
      if (!c.sort) return { label: c.label, class: c.class };
      const mark = sortBy === i ? (sortDir > 0 ? ' ▲' : ' ▼') : '';
      return { label: h('button', { type: 'button', class: 'th-sort', dataset: { col: String(i) }, on: { click: () => sortOn(i) } }, c.label, mark), class: c.class };
    });
    fill(body, table(heads, shown.map(row), { empty: items.length ? 'Nothing matches.' : empty, class: 'data', id }));
  }

  function sortOn(i) {
    if (sortBy === i) sortDir = -sortDir; else { sortBy = i; sortDir = 1; }
    render();
  }

  query.addEventListener('input', () => { page = 0; render(); });
  prev.addEventListener('click', () => { page = Math.max(0, page - 1); render(); });
  next.addEventListener('click', () => { page += 1; render(); });

  return {
    el,
    set(list) { items = list; render(); },
    refresh() { render(true); },
    /** A filter changed: back to the first page. */
    reset() { page = 0; render(true); },
    /** Go to the page holding the item with this key (a deep link). */
    show(k) {
      query.value = '';
      const i = matching().findIndex((item) => key(item) === k);
      if (i >= 0) page = Math.floor(i / pageSize);
      render();
    },
    get query() { return query; },
  };
}
