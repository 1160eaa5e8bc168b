// Cost insights from GET /api/llm-usage/{userId}/insights: the month-end forecast,
// days far above their trailing mean, cheaper enabled models for the observed token mix,
// and repeated prompts the response cache would have answered.

import { get, seg } from './api.js';
import { h, field, table, td } from './dom.js';
import { usd, int } from './format.js';
import { providerName } from './providers.js';
import { PERIODS, card } from './usage.js';

function forecast(f) {
  const over = f.limit_usd !== null && f.limit_usd !== undefined && f.over_budget;
  return h('section', { 'aria-labelledby': 'fc-h' }, h('h2', { id: 'fc-h', text: `Forecast for ${f.month}` }),
    h('div.cards', {},
      card('Spent this month', usd(f.spent_usd)),
      card('Projected month end', usd(f.projected_usd)),
      card('Monthly budget', f.limit_usd === null || f.limit_usd === undefined ? 'none' : usd(f.limit_usd))),
    h(over ? 'p.message.error' : 'p.muted', {
      text: over ? 'At this pace the month ends over budget.'
        : `Day ${f.days_elapsed} of ${f.days_in_month}.`,
    }));
}

function anomalies(list) {
  const rows = list.map((a) => h('tr', {}, td(a.date), td(usd(a.cost_usd), true), td(usd(a.trailing_mean_usd), true)));
  return h('section', { 'aria-labelledby': 'an-h' }, h('h2', { id: 'an-h', text: 'Spend anomalies' }),
    rows.length ? table(['Day', '#Cost', '#Trailing mean'], rows, 'Spend anomalies')
      : h('p.muted', { text: 'No day was far above the days before it.' }));
}

function cheaper(list) {
  const rows = list.map((c) => h('tr', { 'data-key': `${c.provider}/${c.model}` },
    td(`${c.model} (${providerName(c.provider)})`), td(int(c.requests), true),
    td(`${int(c.input_tokens)} in / ${int(c.output_tokens)} out`, true), td(usd(c.cost_usd), true),
    td(`${c.alternative_model} (${providerName(c.alternative_provider)})`),
    td(usd(c.alternative_cost_usd), true), td(usd(c.saving_usd), true),
    td(c.needs_key ? 'needs a key' : 'ready')));
  return h('section', { 'aria-labelledby': 'ch-h' }, h('h2', { id: 'ch-h', text: 'Cheaper models' }),
    rows.length ? table(['Model used', '#Requests', '#Tokens', '#Cost', 'Cheaper enabled model', '#Would cost', '#Saving', 'Your key'], rows, 'Cheaper models')
      : h('p.muted', { text: 'No enabled model would have been cheaper for these requests.' }));
}

const plural = (n, word) => `${int(n)} ${word}${n === 1 ? '' : 's'}`;

function repeated(r) {
  return h('section', { 'aria-labelledby': 'rp-h' }, h('h2', { id: 'rp-h', text: 'Repeated prompts' }),
    r.repeated_requests > 0
      ? h('p', {
        'data-insight': 'repeated',
        text: `${plural(r.repeated_requests, 'request')} repeated ${plural(r.distinct_prompts, 'earlier prompt')} and cost ${usd(r.cost_usd)}; `
          + (r.caching_enabled ? 'caching is on, so they had expired from the cache or were not cacheable.'
            : 'the response cache would have answered them. Turn on "Enable caching" in Settings.'),
      })
      : h('p.muted', { text: 'No prompt was sent twice.' }));
}

export async function render(view, { me, stale }) {
  const period = h('select', { name: 'period' },
    PERIODS.map((d) => h('option', { value: d, text: `Last ${d} days`, selected: d === 30 })));
  period.value = '30';
  const body = h('div');
  view.append(field('Period', period)[0], body);
  async function draw() {
    const r = await get(`/api/llm-usage/${seg(me.userId)}/insights?days=${period.value}`);
    if (stale()) return;
    body.replaceChildren(forecast(r.forecast), anomalies(r.anomalies || []),
      cheaper(r.cheaper_models || []), repeated(r.repeated_prompts || { repeated_requests: 0 }));
    if (r.truncated) body.append(h('p.muted', { text: 'Only the newest requests of the period were read.' }));
  }
  period.addEventListener('change', () => draw());
  await draw();
}
