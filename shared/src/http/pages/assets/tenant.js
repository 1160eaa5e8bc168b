// The tenant page, for tenant admins (and global admins): the tenant's keys and
// preferences (the same form as a user's, on /api/tenants/{tenantId}/llm-settings), its
// members' usage, and the last 24 hours per provider and model with the rate-limit state
// its keys last reported.

import { get, seg } from './api.js';
import { h, table, td } from './dom.js';
import { usd, int, pct, ms, when } from './format.js';
import { renderSettings } from './settings.js';
import { summaryCards, breakdown, periodRange } from './usage.js';
import { providerName } from './providers.js';

function last24h(r) {
  const rows = (r.models || []).map((v) => h('tr', { 'data-key': `${v.provider}/${v.model}` },
    td(providerName(v.provider)), td(v.model), td(int(v.requests), true), td(int(v.tokens), true),
    td(usd(v.cost_usd), true), td(ms(v.avg_latency_ms), true), td(pct(v.success_rate), true),
    td(Object.entries(v.errors || {}).map(([k, n]) => `${k}: ${n}`).join(', '))));
  const limits = (r.rate_limits || []).map((s) => h('tr', {}, td(providerName(s.provider)),
    td(s.requests_remaining == null ? '–' : int(s.requests_remaining), true),
    td(s.tokens_remaining == null ? '–' : int(s.tokens_remaining), true),
    td(when(s.blocked_until || null)), td(when(s.observed_at))));
  return h('div', {},
    r.window ? h('p.muted', { text: `From ${when(r.window.start)} to ${when(r.window.end)}` }) : null,
    rows.length ? table(['Provider', 'Model', '#Requests', '#Tokens', '#Cost', '#Avg latency', '#Success', 'Errors'], rows, 'Last 24 hours')
      : h('p.muted', { text: 'No requests in the last 24 hours.' }),
    h('h3', { text: 'Rate limits the tenant keys last reported' }),
    limits.length ? table(['Provider', '#Requests left', '#Tokens left', 'Blocked until', 'Reported'], limits, 'Rate limits')
      : h('p.muted', { text: 'No provider has reported a limit.' }));
}

export async function render(view, { me }) {
  const t = me.tenantId;
  const base = `/api/tenants/${seg(t)}`;
  view.querySelector('h1').textContent = `Tenant ${t}`;
  const { start, end } = periodRange(30);
  const [sum, day] = await Promise.all([
    get(`${base}/llm-usage/summary?start=${start}&end=${end}`),
    get(`${base}/llm-usage/last24h`),
  ]);
  view.append(
    h('h2', { text: 'Usage, last 30 days' }), summaryCards(sum),
    h('div.grid.wide', {}, breakdown('By provider', 'Provider', sum.by_provider, providerName),
      breakdown('By model', 'Model', sum.by_model)),
    h('h2', { text: 'Last 24 hours' }), last24h(day),
    h('h2', { text: 'Tenant keys and preferences' }),
  );
  const form = h('div');
  view.append(form);
  if (me.tenantAdmin || me.admin) await renderSettings(form, `${base}/llm-settings`);
}
