// Usage analytics: cards, breakdowns, the daily cost chart, the month's budget and a
// CSV export, for a period of 7, 30 or 90 days ending today (UTC).

import { get, download, seg, describe } from './api.js';
import { h, field, table, td, messageLine } from './dom.js';
import { usd, int, pct, ms, isoDay } from './format.js';
import { dailyChart } from './charts.js';
import { providerName } from './providers.js';

export const PERIODS = [7, 30, 90];

/** [start, end) in whole UTC days: the last `days` days, today included. */
export function periodRange(days, now = new Date()) {
  const today = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()));
  const start = new Date(today.getTime() - (days - 1) * 86400000);
  const end = new Date(today.getTime() + 86400000);
  return { start: isoDay(start), end: isoDay(end) };
}

export function card(label, value, name) {
  return h('div.card', { 'data-card': name || label },
    h('div.label', { text: label }), h('div.value', { text: value }));
}

export function summaryCards(sum) {
  return h('div.cards', { role: 'group', 'aria-label': 'Overview' },
    card('Total cost', usd(sum.total_cost_usd)),
    card('Requests', int(sum.total_requests)),
    card('Tokens', int(sum.total_tokens)),
    card('Avg cost / request', usd(sum.avg_cost_per_request)),
    card('Success rate', pct(sum.success_rate)),
    card('Cache-hit rate', pct(sum.cache_hit_rate)),
    card('Avg latency', ms(sum.avg_latency_ms)));
}

export function breakdown(title, column, groups, nameOf) {
  const rows = Object.entries(groups || {})
    .sort((a, b) => (Number(b[1].cost_usd) || 0) - (Number(a[1].cost_usd) || 0))
    .map(([k, v]) => h('tr', { 'data-key': k }, td(nameOf ? nameOf(k) : k),
      td(int(v.requests), true), td(int(v.tokens), true), td(usd(v.cost_usd), true)));
  return h('section', {}, h('h3', { text: title }),
    rows.length ? table([column, '#Requests', '#Tokens', '#Cost'], rows, title)
      : h('p.muted', { text: 'No requests in this period.' }));
}

export function budgetBar(b) {
  const wrap = h('section', { 'aria-labelledby': 'budget-h' }, h('h2', { id: 'budget-h', text: `Budget ${b.month}` }));
  if (b.limit_usd === null || b.limit_usd === undefined) {
    wrap.append(h('p', { text: `No monthly budget set. Spent ${usd(b.spent_usd)} this month, projected ${usd(b.projected_usd)}.` }));
    return wrap;
  }
  const limit = Number(b.limit_usd);
  const share = (x) => (limit > 0 ? Math.min(100, (Number(x) / limit) * 100) : 100);
  const fill = h('div.fill');
  fill.style.width = `${share(b.spent_usd)}%`;
  const proj = h('div.projection');
  proj.style.left = `${share(b.projected_usd)}%`;
  const bar = h('div.bar', {
    role: 'meter', 'aria-valuemin': 0, 'aria-valuemax': String(b.limit_usd), 'aria-valuenow': String(b.spent_usd),
    'aria-label': 'Budget used',
  }, fill, proj);
  wrap.append(bar, h('p', {
    'data-budget': 'text',
    text: `Spent ${usd(b.spent_usd)} of ${usd(b.limit_usd)} (reserved ${usd(b.reserved_usd)}, remaining ${usd(b.remaining_usd)}). `
      + `Projected by month end: ${usd(b.projected_usd)}.`,
  }));
  if ((b.alerted_thresholds || []).length) {
    wrap.append(h('p.muted', { text: `Alerts sent this month at ${b.alerted_thresholds.join('%, ')}%.` }));
  }
  return wrap;
}

export async function render(view, { me, stale }) {
  const base = `/api/llm-usage/${seg(me.userId)}`;
  const period = h('select', { name: 'period' },
    PERIODS.map((d) => h('option', { value: d, text: `Last ${d} days`, selected: d === 30 })));
  period.value = '30';
  const exportMsg = messageLine();
  const exportButton = h('button', { type: 'button', text: 'Export CSV' });
  const body = h('div');
  view.append(h('div.row', {}, field('Period', period)[0], h('div.actions', {}, exportButton)), exportMsg, body);

  async function draw() {
    const days = Number(period.value);
    const { start, end } = periodRange(days);
    body.replaceChildren(h('p.muted', { text: 'Loading…' }));
    const [sum, daily, budget] = await Promise.all([
      get(`${base}/summary?start=${start}&end=${end}`),
      get(`${base}/daily?days=${days}`),
      get(`${base}/budget`),
    ]);
    if (stale()) return;
    body.replaceChildren(
      summaryCards(sum),
      h('h2', { text: 'Daily cost' }),
      dailyChart(daily.days || [], `Daily cost, last ${days} days`),
      budgetBar(budget),
      h('h2', { text: 'Breakdowns' }),
      h('div.grid.wide', {},
        breakdown('By provider', 'Provider', sum.by_provider, providerName),
        breakdown('By operation', 'Operation', sum.by_operation),
        breakdown('By model', 'Model', sum.by_model)),
    );
  }

  period.addEventListener('change', () => draw().catch((e) => body.replaceChildren(
    h('p.message.error', { role: 'alert', text: describe(e) }))));
  exportButton.addEventListener('click', async () => {
    exportMsg.clear();
    const { start, end } = periodRange(Number(period.value));
    try {
      const blob = await download(`${base}/export?format=csv&start=${start}&end=${end}`);
      const a = h('a', { href: URL.createObjectURL(blob), download: `usage-${me.userId}-${start}-to-${end}.csv` });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 10000);
      exportMsg.ok('Export downloaded');
    } catch (e) {
      exportMsg.error(describe(e));
    }
  });
  await draw();
}
