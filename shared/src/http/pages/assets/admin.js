// Admin: the model registry (search, filters, an "Enabled" switch per row, defaults,
// priorities, bulk actions, add and edit), the audit trail, provider health and per-user
// limits. Shown only to admins; the API refuses everyone else with 403 anyway.

import { get, post, put, seg, describe } from './api.js';
import { h, field, table, td, messageLine } from './dom.js';
import { usd, int, pct, when, decimalText } from './format.js';
import { providerName } from './providers.js';

const OPERATIONS = ['query_generation', 'detection_rule', 'conversation', 'rule_enrichment'];

async function allEntries(params) {
  const out = [];
  let next = null;
  for (let page = 0; page < 50; page += 1) {
    const q = new URLSearchParams(params);
    q.set('limit', '100');
    if (next) q.set('nextToken', next);
    const r = await get(`/api/admin/llms?${q}`);
    out.push(...(r.llms || []));
    next = r.nextToken;
    if (!next) break;
  }
  return out;
}

function registry(providers) {
  const section = h('section', { 'aria-labelledby': 'reg-h' }, h('h2', { id: 'reg-h', text: 'Model registry' }));
  const search = h('input', { type: 'search', name: 'search', placeholder: 'Name, model or description' });
  const provider = h('select', { name: 'provider' }, h('option', { value: '', text: 'All providers' }),
    providers.map((p) => h('option', { value: p, text: providerName(p) })));
  const status = h('select', { name: 'status' }, h('option', { value: '', text: 'All' }),
    h('option', { value: 'true', text: 'Enabled' }), h('option', { value: 'false', text: 'Disabled' }));
  const operation = h('select', { name: 'operation' }, h('option', { value: '', text: 'Every operation' }),
    OPERATIONS.map((o) => h('option', { value: o, text: o })));
  const bulkAction = h('select', { name: 'bulk' }, ['enable', 'disable', 'delete'].map((a) => h('option', { value: a, text: a })));
  const msg = messageLine();
  const list = h('div');
  const form = entryForm(providers, async () => { await draw(); }, msg);
  const selected = new Set();

  async function act(fn, done) {
    msg.clear();
    try {
      await fn();
      if (done) msg.ok(done);
      await draw();
    } catch (e) {
      msg.error(describe(e));
    }
  }

  async function draw() {
    const params = {};
    if (search.value.trim()) params.search = search.value.trim();
    if (provider.value) params.provider = provider.value;
    if (status.value) params.enabled = status.value;
    const entries = await allEntries(params);
    selected.clear();
    const rows = entries.map((e) => {
      const pick = h('input', {
        type: 'checkbox', 'aria-label': `Select ${e.name}`,
        onchange: (ev) => { if (ev.target.checked) selected.add(e.id); else selected.delete(e.id); },
      });
      const enabled = h('input.switch', {
        type: 'checkbox', role: 'switch', checked: e.enabled, 'aria-label': `Enabled ${e.name}`,
        onchange: () => act(() => post(`/api/admin/llms/${seg(e.id)}/toggle`),
          `${e.name} ${e.enabled ? 'disabled' : 'enabled'}`),
      });
      const priority = h('input', {
        type: 'number', step: 1, value: e.priority, 'aria-label': `Priority of ${e.name}`,
        onchange: (ev) => act(() => put(`/api/admin/llms/${seg(e.id)}`, { priority: Number(ev.target.value), version: e.version }),
          `${e.name}: priority ${ev.target.value}`),
      });
      const defaults = (e.default_for || []).map((o) => (o === '*' ? 'every operation' : o)).join(', ');
      return h('tr', { 'data-id': e.id },
        td(pick), td(h('span', {}, e.name, e.scope !== 'global' ? h('span.badge', { text: e.scope }) : null)),
        td(providerName(e.provider)), td(e.model_name), td(priority), td(enabled),
        td(defaults ? h('span.badge', { text: `default: ${defaults}` }) : ''),
        td(h('div.actions', {},
          h('button', {
            type: 'button', 'aria-label': `Set ${e.name} as default`, text: 'Set default',
            onclick: () => act(() => post(`/api/admin/llms/${seg(e.id)}/set-default`,
              operation.value ? { operationType: operation.value } : undefined), `${e.name} is the default`),
          }),
          h('button', { type: 'button', 'aria-label': `Edit ${e.name}`, text: 'Edit', onclick: () => form.edit(e) }))));
    });
    list.replaceChildren(
      h('p.muted', { text: `${entries.length} models` }),
      table(['Select', 'Name', 'Provider', 'Model', 'Priority', 'Enabled', 'Default', 'Actions'], rows, 'Model registry'));
  }

  const filters = h('form.row', {
    role: 'search',
    onsubmit: (ev) => { ev.preventDefault(); draw().catch((e) => msg.error(describe(e))); },
  }, field('Search', search)[0], field('Provider', provider)[0], field('Status', status)[0],
  h('div.actions', {}, h('button', { type: 'submit', text: 'Search' })));
  provider.addEventListener('change', () => draw().catch((e) => msg.error(describe(e))));
  status.addEventListener('change', () => draw().catch((e) => msg.error(describe(e))));

  const bulk = h('div.row', {}, field('Bulk action', bulkAction)[0], field('Default for', operation)[0],
    h('div.actions', {}, h('button', {
      type: 'button', text: 'Apply to selected',
      onclick: async () => {
        msg.clear();
        if (!selected.size) { msg.error('Select at least one model.'); return; }
        try {
          const r = await post('/api/admin/llms/bulk', { action: bulkAction.value, ids: [...selected] });
          const failures = (r.results || []).filter((x) => !x.ok).map((x) => `${x.id}: ${x.error ? x.error.message : 'failed'}`);
          if (failures.length) msg.error(`${r.succeeded} succeeded, ${r.failed} failed: ${failures.join('; ')}`);
          else msg.ok(`${r.succeeded} ${bulkAction.value}d`);
          await draw();
        } catch (e) {
          msg.error(describe(e));
        }
      },
    })));
  section.append(filters, bulk, msg, list, form);
  section.load = draw;
  return section;
}

/** Add (POST) or edit (PUT) one entry; the API validates and names the field. */
function entryForm(providers, onSaved, listMsg) {
  let editing = null;
  const c = {
    name: h('input', { type: 'text', name: 'name' }),
    provider: h('select', { name: 'provider' }, providers.map((p) => h('option', { value: p, text: providerName(p) }))),
    model_name: h('input', { type: 'text', name: 'model_name' }),
    description: h('input', { type: 'text', name: 'description' }),
    priority: h('input', { type: 'number', step: 1, name: 'priority', value: 100 }),
    enabled: h('input', { type: 'checkbox', checked: true }),
    temperature: h('input', { type: 'number', step: 0.1, min: 0, max: 2, name: 'temperature' }),
    max_tokens: h('input', { type: 'number', step: 1, min: 1, name: 'max_tokens' }),
    auth_kind: h('select', { name: 'auth_kind' }, h('option', { value: '', text: 'None (users bring keys)' }),
      h('option', { value: 'api_key_env', text: 'Environment variable (local)' }),
      h('option', { value: 'api_key_secret', text: 'Secrets Manager name (AWS)' })),
    auth_ref: h('input', { type: 'text', name: 'auth_ref', autocomplete: 'off' }),
    price_input: h('input', { type: 'text', inputmode: 'decimal', name: 'price_input' }),
    price_output: h('input', { type: 'text', inputmode: 'decimal', name: 'price_output' }),
  };
  const title = h('h3', { text: 'Add a model' });
  const submit = h('button.primary', { type: 'submit', text: 'Add model' });
  const cancel = h('button', { type: 'button', text: 'Cancel edit', hidden: true });
  const msg = messageLine();

  function reset() {
    editing = null;
    for (const el of Object.values(c)) if (el.type !== 'checkbox') el.value = '';
    c.priority.value = 100;
    c.enabled.checked = true;
    c.provider.value = providers[0];
    title.textContent = 'Add a model';
    submit.textContent = 'Add model';
    cancel.hidden = true;
  }

  function body() {
    const num = (el) => (el.value.trim() === '' ? undefined : (Number.isNaN(Number(el.value)) ? el.value : Number(el.value)));
    const config = {};
    if (num(c.temperature) !== undefined) config.temperature = num(c.temperature);
    if (num(c.max_tokens) !== undefined) config.max_tokens = num(c.max_tokens);
    const b = {
      name: c.name.value.trim(), provider: c.provider.value, model_name: c.model_name.value.trim(),
      description: c.description.value, priority: num(c.priority) === undefined ? 100 : num(c.priority),
      enabled: c.enabled.checked, config,
      auth_meta: c.auth_kind.value ? { [c.auth_kind.value]: c.auth_ref.value.trim() } : null,
      price_override: c.price_input.value.trim() || c.price_output.value.trim()
        ? { input: c.price_input.value.trim(), output: c.price_output.value.trim() } : null,
    };
    if (editing) b.version = editing.version;
    return b;
  }

  const form = h('form', {
    novalidate: true,
    onsubmit: async (ev) => {
      ev.preventDefault();
      msg.clear();
      for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
      try {
        const b = body();
        const saved = editing ? await put(`/api/admin/llms/${seg(editing.id)}`, b) : await post('/api/admin/llms', b);
        msg.ok(`${saved.name || b.name} saved`);
        reset();
        await onSaved();
      } catch (e) {
        msg.error(describe(e));
        const m = /^(\w+)/.exec(e.message || '');
        const key = m && (m[1] === 'auth_meta' ? 'auth_ref' : m[1] === 'config' ? 'temperature' : m[1]);
        if (key && c[key]) { c[key].setAttribute('aria-invalid', 'true'); c[key].focus(); }
      }
    },
  }, title,
  h('div.row', {}, field('Name', c.name)[0], field('Provider', c.provider)[0], field('Model name', c.model_name)[0]),
  field('Description', c.description)[0],
  h('div.row', {}, field('Priority', c.priority, 'Lower is tried first.')[0], field('Temperature', c.temperature)[0],
    field('Max tokens', c.max_tokens)[0], h('label.inline', {}, c.enabled, 'Enabled')),
  h('div.row', {}, field('Operator credential', c.auth_kind)[0],
    field('Credential reference', c.auth_ref, 'A name, never a key.')[0]),
  h('div.row', {}, field('Input price per 1M (USD)', c.price_input)[0], field('Output price per 1M (USD)', c.price_output)[0]),
  h('div.actions', {}, submit, cancel), msg);
  cancel.addEventListener('click', reset);
  form.edit = (e) => {
    editing = e;
    c.name.value = e.name;
    c.provider.value = e.provider;
    c.model_name.value = e.model_name;
    c.description.value = e.description || '';
    c.priority.value = e.priority;
    c.enabled.checked = e.enabled;
    c.temperature.value = e.config && e.config.temperature != null ? e.config.temperature : '';
    c.max_tokens.value = e.config && e.config.max_tokens != null ? e.config.max_tokens : '';
    const auth = e.auth_meta || {};
    const kind = Object.keys(auth)[0] || '';
    c.auth_kind.value = kind;
    c.auth_ref.value = kind ? auth[kind] : '';
    const po = e.price_override || {};
    c.price_input.value = po.input != null ? decimalText(po.input) : '';
    c.price_output.value = po.output != null ? decimalText(po.output) : '';
    title.textContent = `Edit ${e.name}`;
    submit.textContent = 'Save model';
    cancel.hidden = false;
    listMsg.clear();
    c.name.focus();
  };
  reset();
  return form;
}

function audit() {
  const section = h('section', { 'aria-labelledby': 'audit-h' }, h('h2', { id: 'audit-h', text: 'Audit trail' }));
  const f = {
    actor: h('input', { type: 'text', name: 'actor' }),
    target: h('input', { type: 'text', name: 'target', placeholder: 'user:alice, llm:<id>' }),
    action: h('input', { type: 'text', name: 'action' }),
    start: h('input', { type: 'date', name: 'start' }),
    end: h('input', { type: 'date', name: 'end' }),
  };
  const msg = messageLine();
  const body = h('tbody');
  const more = h('button', { type: 'button', text: 'Load more', hidden: true });
  let next = null;
  const change = (v) => (v === undefined || v === null ? '' : JSON.stringify(v));
  async function load(reset) {
    msg.clear();
    const q = new URLSearchParams();
    for (const [k, el] of Object.entries(f)) if (el.value.trim()) q.set(k, el.value.trim());
    q.set('limit', '50');
    if (!reset && next) q.set('nextToken', next);
    try {
      const r = await get(`/api/admin/audit?${q}`);
      if (reset) body.replaceChildren();
      for (const e of r.events || r.entries || []) {
        body.append(h('tr', {}, td(when(e.timestamp || e.time)), td(e.actor), td(e.action), td(e.target),
          td(h('details', {}, h('summary', { text: 'Change' }),
            h('pre.output', { text: `before: ${change(e.before)}\nafter: ${change(e.after)}` }))),
          td(e.request_id || e.requestId || '')));
      }
      next = r.nextToken;
      more.hidden = !next;
    } catch (e) {
      msg.error(describe(e));
    }
  }
  more.addEventListener('click', () => load(false));
  const t = h('div.table-wrap', {}, h('table', {}, h('thead', {}, h('tr', {},
    ['Time', 'Actor', 'Action', 'Target', 'Change', 'Request'].map((x) => h('th', { scope: 'col', text: x })))), body));
  section.append(h('form.row', {
    onsubmit: (ev) => { ev.preventDefault(); load(true); },
  }, Object.entries({ Actor: f.actor, Target: f.target, Action: f.action, From: f.start, To: f.end })
    .map(([l, el]) => field(l, el)[0]), h('div.actions', {}, h('button', { type: 'submit', text: 'Filter' }))),
  msg, t, h('div.actions', {}, more));
  section.load = () => load(true);
  return section;
}

function health() {
  const section = h('section', { 'aria-labelledby': 'health-h' }, h('h2', { id: 'health-h', text: 'Provider health' }));
  const body = h('div');
  const refresh = h('button', { type: 'button', text: 'Refresh health' });
  const row = (name, v) => h('tr', { 'data-key': name }, td(name), td(int(v.requests), true), td(pct(v.success_rate), true),
    td(v.latency_p50_ms == null ? '–' : `${v.latency_p50_ms} ms`, true),
    td(v.latency_p95_ms == null ? '–' : `${v.latency_p95_ms} ms`, true), td(pct(v.cache_hit_rate), true),
    td(Object.entries(v.errors || {}).map(([k, n]) => `${k}: ${n}`).join(', ')));
  async function load() {
    const r = await get('/api/admin/providers/health');
    body.replaceChildren(...Object.entries(r.windows || {}).map(([name, w]) => h('div', {},
      h('h3', { text: `Last ${name}` }),
      table(['Provider', '#Requests', '#Success', '#p50', '#p95', '#Cache hits', 'Errors'],
        Object.entries(w.providers || {}).map(([p, v]) => row(p, v)), `Providers, last ${name}`),
      h('details', {}, h('summary', { text: `Models, last ${name}` }),
        table(['Model', '#Requests', '#Success', '#p50', '#p95', '#Cache hits', 'Errors'],
          Object.entries(w.models || {}).map(([m, v]) => row(m, v)), `Models, last ${name}`)))));
  }
  refresh.addEventListener('click', () => load().catch((e) => body.replaceChildren(h('p.message.error', { text: describe(e) }))));
  section.append(h('div.actions', {}, refresh), body);
  section.load = load;
  return section;
}

function limits() {
  const section = h('section', { 'aria-labelledby': 'limits-h' }, h('h2', { id: 'limits-h', text: 'User limits' }));
  const user = h('input', { type: 'text', name: 'limits-user', autocomplete: 'off' });
  const budget = h('input', { type: 'text', inputmode: 'decimal', name: 'limits-budget', placeholder: 'No cap' });
  const rpm = h('input', { type: 'number', min: 1, step: 1, name: 'limits-rpm', placeholder: 'No limit' });
  const msg = messageLine();
  const path = () => `/api/admin/users/${seg(user.value.trim())}/limits`;
  const num = (el) => (el.value.trim() === '' ? null : (Number.isNaN(Number(el.value)) ? el.value : Number(el.value)));
  const load = h('button', {
    type: 'button', text: 'Load limits',
    onclick: async () => {
      msg.clear();
      if (!user.value.trim()) { msg.error('Enter a user id.'); return; }
      try {
        const r = await get(path());
        budget.value = r.monthlyBudgetUsd == null ? '' : decimalText(r.monthlyBudgetUsd);
        rpm.value = r.requestsPerMinute == null ? '' : r.requestsPerMinute;
        msg.ok(`Limits of ${user.value.trim()} loaded`);
      } catch (e) {
        msg.error(describe(e));
      }
    },
  });
  const form = h('form', {
    novalidate: true,
    onsubmit: async (ev) => {
      ev.preventDefault();
      msg.clear();
      if (!user.value.trim()) { msg.error('Enter a user id.'); return; }
      try {
        const r = await put(path(), { monthlyBudgetUsd: num(budget), requestsPerMinute: num(rpm) });
        msg.ok(`Limits saved: budget ${r.monthlyBudgetUsd == null ? 'none' : usd(r.monthlyBudgetUsd)}, `
          + `${r.requestsPerMinute == null ? 'no rate limit' : `${r.requestsPerMinute} requests per minute`}`);
      } catch (e) {
        msg.error(describe(e));
      }
    },
  }, h('div.row', {}, field('User id', user)[0], field('Monthly budget cap (USD)', budget)[0],
    field('Requests per minute', rpm)[0]),
  h('div.actions', {}, load, h('button.primary', { type: 'submit', text: 'Save limits' })), msg);
  section.append(form);
  return section;
}

export async function render(view, { me }) {
  // Every built-in provider: the settings body lists them all.
  const own = await get(`/api/llm-settings/${seg(me.userId)}`);
  const settingsProviders = Object.keys(own.hasApiKeys);
  const reg = registry(settingsProviders);
  const log = audit();
  const hl = health();
  view.append(reg, hl, limits(), log);
  await Promise.all([reg.load(), log.load(), hl.load()]);
}
