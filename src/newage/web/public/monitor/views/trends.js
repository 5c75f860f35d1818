// Trends: the server's own counters over the last minutes or hour, drawn
// with uPlot (vendored under ./vendor with its licence), and the state of
// each connected extension. Only new points are fetched (`since`).

import uPlot from '../vendor/uPlot.esm.js';
import { MSG_TYPE } from '/lib/constants.js';
import { badge, clock, fill, h, select, table, text } from '../dom.js';

const WINDOWS = [['300', 'last 5 minutes'], ['900', 'last 15 minutes'], ['3600', 'last hour']];
const CHARTS = [
  { id: 'requests', title: 'Requests and failures per second', series: [['requests', 'requests/s', '--accent'], ['failures', 'failures/s', '--danger']] },
  { id: 'tokens', title: 'Tokens per second', series: [['tokens', 'tokens/s', '--ok']] },
  { id: 'ttft', title: 'Time to first token (ms)', series: [['firstTokenMs', 'ms', '--warn']] },
  { id: 'load', title: 'Open sockets and requests', series: [['connections', 'sockets', '--accent'], ['inFlight', 'requests in flight', '--warn']] },
];

/** A theme colour as the canvas needs it (the variables hold light-dark() pairs). */
function color(name) {
  const probe = document.createElement('span');
  probe.style.color = `var(${name})`;
  document.body.appendChild(probe);
  const value = getComputedStyle(probe).color;
  probe.remove();
  return value || '#888';
}

function create(ctx) {
  let timer = null;
  let charts = [];
  let columns = null; // name -> values, oldest first
  let last = null;
  let interval = 5000;
  const windowSelect = select(WINDOWS, '900', { id: 'trends-window', 'aria-label': 'Time window' });
  const totals = h('p', { class: 'muted small', id: 'trends-totals' });
  const boxes = CHARTS.map((c) => h('div', { class: 'card' }, h('h2', null, c.title), h('div', { class: 'chart', id: `chart-${c.id}` })));
  const extensions = h('div', { id: 'trends-extensions' });
  const section = h('section', { 'aria-labelledby': 'trends-title' },
    h('div', { class: 'view-head' }, h('h1', { id: 'trends-title' }, 'Trends'), windowSelect),
    totals,
    h('div', { class: 'charts' }, boxes),
    h('div', { class: 'card' }, h('h2', null, 'Extensions'), extensions));

  function build() {
    for (const c of charts) c.plot.destroy();
    charts = CHARTS.map((c, i) => {
      const box = boxes[i].querySelector('.chart');
      const opts = {
        width: Math.max(240, box.clientWidth),
        height: 180,
        legend: { show: true },
        cursor: { drag: { x: false, y: false } },
        axes: [
          { stroke: color('--muted'), grid: { stroke: color('--border') } },
          { stroke: color('--muted'), grid: { stroke: color('--border') }, size: 50 },
        ],
        series: [{}, ...c.series.map(([, label, css]) => ({ label, stroke: color(css), width: 2, spanGaps: false }))],
      };
      const chart = { def: c, box, plot: new uPlot(opts, data(c), box) };
      draw(chart);
      return chart;
    });
  }

  function data(c) {
    const cols = columns || {};
    const t = cols.t || [];
    const from = Date.now() / 1000 - Number(windowSelect.value);
    const start = t.findIndex((x) => x >= from);
    const cut = (values) => (start < 0 ? [] : (values || []).slice(start));
    return [cut(t), ...c.series.map(([name]) => cut(cols[name]))];
  }

  async function poll() {
    let ack;
    try {
      ack = await ctx.call('/debug', MSG_TYPE.GET_METRICS_SERIES, last === null ? {} : { since: last });
    } catch {
      return; // the connection state pill says why; the next round tries again
    }
    interval = ack.intervalMs || interval;
    const fresh = ack.series;
    if (!columns) columns = Object.fromEntries(Object.keys(fresh).map((k) => [k, []]));
    for (const [k, values] of Object.entries(fresh)) columns[k].push(...values);
    const keep = Math.ceil((ack.windowSeconds * 1000) / interval);
    for (const k of Object.keys(columns)) if (columns[k].length > keep) columns[k].splice(0, columns[k].length - keep);
    if (fresh.t.length) last = fresh.t[fresh.t.length - 1];
    text(totals, `Since start: ${ack.totals.requests} request(s), ${ack.totals.tokens} token(s), ${ack.totals.failures} failure(s) · one point every ${interval / 1000} s`);
    if (!charts.length) build();
    for (const c of charts) draw(c);
    section.dataset.points = String(columns.t.length);
    renderExtensions(ack.extensions || []);
  }

  function renderExtensions(list) {
    fill(extensions, table(
      [{ label: 'Extension' }, { label: 'State' }, { label: 'Queue', class: 'num' }, { label: 'Served', class: 'num' },
        { label: 'Failed', class: 'num' }, { label: 'Last answer' }],
      list.map((e) => h('tr', { dataset: { identity: e.identity } },
        h('td', null, h('span', { class: 'ident' }, e.identity),
          e.node ? h('div', { class: 'muted small', title: 'cluster node' }, `node ${e.node}`) : null),
        h('td', null, badge(e.state, e.state === 'busy' ? 'accent' : 'ok')),
        h('td', { class: 'num' }, e.queueLength),
        h('td', { class: 'num' }, e.served),
        h('td', { class: 'num' }, e.failed),
        h('td', { class: 'nowrap' }, e.lastAnswerAt ? clock(e.lastAnswerAt) : '–'))),
      { empty: 'No extension connected.', class: 'data', id: 'extensions-table' }));
  }

  const schedule = () => {
    clearTimeout(timer);
    timer = setTimeout(async () => { await poll(); if (!section.hidden) schedule(); }, interval);
  };
  /** New data into a chart; its box says the top value drawn (for a glance, and for tests). */
  function draw(c) {
    const values = data(c.def);
    c.plot.setData(values);
    const top = Math.max(...values.slice(1).flat().filter((v) => typeof v === 'number'));
    if (Number.isFinite(top)) c.box.dataset.max = String(top); else delete c.box.dataset.max;
  }

  windowSelect.addEventListener('change', () => { for (const c of charts) draw(c); });
  window.addEventListener('resize', () => {
    for (const c of charts) c.plot.setSize({ width: Math.max(240, c.box.clientWidth), height: 180 });
  });
  // the theme switch recolours the charts
  new MutationObserver(() => { if (charts.length) build(); })
    .observe(document.documentElement, { attributes: true, attributeFilter: ['data-theme'] });
  section.onShow = async () => {
    await poll();
    if (charts.length) for (const c of charts) c.plot.setSize({ width: Math.max(240, c.box.clientWidth), height: 180 });
    schedule();
  };
  return section;
}

export default { id: 'trends', create };
