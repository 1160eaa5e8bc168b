// Settings: a card per provider (key status, a key field, a connection test, removal),
// a model per operation with its price, and the other preferences. Everything is read
// from and written to /api/llm-settings/{userId}; keys go in once and never come back.

import { get, put, post, del, seg, describe } from './api.js';
import { h, field, messageLine } from './dom.js';
import { usd, addExact, ms } from './format.js';
import { providerName, KEY_SHAPES } from './providers.js';

export const OPERATIONS = [
  { label: 'Query model', pref: 'queryModel' },
  { label: 'Detection model', pref: 'detectionModel' },
  { label: 'Conversation model', map: 'conversation' },
  { label: 'Rule enrichment model', map: 'rule_enrichment' },
];

/** Chat models users may pick (embedding models are not for generation). */
export function chatModels(models) {
  const seen = new Set();
  return models.filter((m) => {
    if ((m.capabilities || []).includes('embeddings') || seen.has(m.id)) return false;
    seen.add(m.id);
    return true;
  });
}

export function modelLabel(m) {
  return `${m.display_name || m.id} (${providerName(m.provider)})`;
}

/** The price of 1M input plus 1M output tokens, exact. */
export function previewText(m) {
  if (!m) return 'The registry default model is used.';
  if (m.input_per_1m == null || m.output_per_1m == null) return 'No known price for this model.';
  return `${usd(addExact(m.input_per_1m, m.output_per_1m))} per 1M input + 1M output tokens `
    + `(input ${usd(m.input_per_1m)}, output ${usd(m.output_per_1m)})`;
}

export async function render(view, { me }) {
  await renderSettings(view, `/api/llm-settings/${seg(me.userId)}`);
}

/** The settings form over `base`: a user's settings, or a tenant's (the same bodies). */
export async function renderSettings(view, base) {
  const [current, catalog] = await Promise.all([get(base), get('/api/llm-models')]);
  const models = chatModels(catalog.models || []);
  const state = { settings: current };

  const keysSection = h('section', { 'aria-labelledby': 'keys-h' }, h('h2', { id: 'keys-h', text: 'Provider keys' }));
  const cards = h('div.grid');
  keysSection.append(cards);

  const keyInputs = {};
  function drawCards() {
    cards.replaceChildren(...Object.keys(state.settings.hasApiKeys).map((p) => {
      const name = providerName(p);
      const configured = state.settings.hasApiKeys[p];
      const hint = (state.settings.keyHints || {})[p];
      const msg = messageLine();
      const [keyField, input] = field(`${name} API key`, h('input', {
        type: 'password', autocomplete: 'off', spellcheck: 'false', placeholder: KEY_SHAPES[p] || '',
        name: `key-${p}`,
      }));
      keyInputs[p] = input;
      const test = h('button', {
        type: 'button',
        onclick: async () => {
          msg.clear();
          test.disabled = true;
          try {
            const body = { provider: p };
            if (input.value.trim()) body.apiKey = input.value.trim();
            const r = await post(`${base}/test`, body);
            if (r.success) msg.ok(`${r.message} · ${ms(r.latency_ms)}${r.model ? ` · ${r.model}` : ''}`);
            else msg.error(r.message);
          } catch (e) {
            msg.error(describe(e));
          } finally {
            test.disabled = false;
          }
        },
        text: 'Test',
        'aria-label': `Test ${name} connection`,
      });
      const remove = configured ? h('button', {
        type: 'button',
        'aria-label': `Remove ${name} key`,
        onclick: async () => {
          msg.clear();
          try {
            await del(`${base}/keys/${seg(p)}`);
            state.settings = await get(base);
            drawCards();
            saveMsg.ok(`${name} key removed`);
          } catch (e) {
            msg.error(describe(e));
          }
        },
        text: 'Remove key',
      }) : null;
      return h('div.card', { 'data-provider': p },
        h('h3', {}, name, configured
          ? h('span.badge', { text: 'Configured' })
          : h('span.badge.off', { text: 'Not configured' })),
        configured && hint ? h('p.muted', { text: `Saved key ${hint}` }) : null,
        keyField,
        h('div.actions', {}, test, remove),
        msg);
    }));
  }
  drawCards();

  // Models per operation, with the live price of each choice.
  const prefs = state.settings.preferences;
  const modelSection = h('section', { 'aria-labelledby': 'models-h' }, h('h2', { id: 'models-h', text: 'Models' }));
  const selects = {};
  const byId = new Map(models.map((m) => [m.id, m]));
  const modelRow = h('div.grid');
  for (const op of OPERATIONS) {
    const saved = op.pref ? prefs[op.pref] : (prefs.models || {})[op.map];
    const select = h('select', { name: op.pref || op.map },
      h('option', { value: '', text: 'Registry default' }),
      models.map((m) => h('option', { value: m.id, text: modelLabel(m), selected: m.id === saved })));
    select.value = saved && byId.has(saved) ? saved : '';
    const preview = h('p.hint', { 'aria-live': 'polite' });
    const note = saved && !byId.has(saved)
      ? h('p.hint', { text: `Your saved model ${saved} is not available now; the default is used.` }) : null;
    const update = () => { preview.textContent = previewText(byId.get(select.value)); };
    select.addEventListener('change', update);
    update();
    selects[op.label] = { op, select };
    const [wrap] = field(op.label, select);
    modelRow.append(h('div.card', {}, wrap, note, preview));
  }
  modelSection.append(modelRow);

  // The other preferences.
  const providers = Object.keys(state.settings.hasApiKeys);
  const controls = {
    defaultProvider: h('select', {}, providers.map((p) => h('option', { value: p, text: providerName(p) }))),
    maxTokens: h('input', { type: 'number', min: 1, step: 1, inputmode: 'numeric' }),
    temperature: h('input', { type: 'number', min: 0, max: 2, step: 0.1, inputmode: 'decimal' }),
    enableCaching: h('input', { type: 'checkbox' }),
    trackUsage: h('input', { type: 'checkbox' }),
    monthlyBudgetUsd: h('input', { type: 'text', inputmode: 'decimal', placeholder: 'No budget' }),
    budgetAction: h('select', {}, ['block', 'downgrade', 'alert_only'].map((a) => h('option', { value: a, text: a }))),
    alertThresholds: h('input', { type: 'text', placeholder: '50, 80, 100' }),
    autoFailover: h('input', { type: 'checkbox' }),
    fallbackProviders: h('input', { type: 'text', placeholder: 'openai, google' }),
    azureResource: h('input', { type: 'text', placeholder: 'my-resource' }),
    azureDeployments: h('input', { type: 'text', placeholder: 'gpt-4o-mini=prod-4o-mini' }),
  };
  controls.defaultProvider.value = prefs.defaultProvider;
  controls.maxTokens.value = prefs.maxTokens;
  controls.temperature.value = prefs.temperature;
  controls.enableCaching.checked = prefs.enableCaching;
  controls.trackUsage.checked = prefs.trackUsage;
  controls.monthlyBudgetUsd.value = prefs.monthlyBudgetUsd == null ? '' : String(prefs.monthlyBudgetUsd);
  controls.budgetAction.value = prefs.budgetAction;
  controls.alertThresholds.value = (prefs.alertThresholds || []).join(', ');
  controls.autoFailover.checked = prefs.autoFailover;
  controls.fallbackProviders.value = (prefs.fallbackProviders || []).join(', ');
  controls.azureResource.value = prefs.azureResource || '';
  controls.azureDeployments.value = Object.entries(prefs.azureDeployments || {}).map(([m, d]) => `${m}=${d}`).join(', ');

  const check = (label, el) => h('label.inline', {}, el, label);
  const advanced = h('details', {},
    h('summary', { text: 'Advanced settings' }),
    h('div.row', {},
      field('Default provider', controls.defaultProvider)[0],
      field('Max tokens', controls.maxTokens)[0],
      field('Temperature', controls.temperature)[0]),
    h('div.row', {},
      check('Enable caching', controls.enableCaching),
      check('Track usage', controls.trackUsage),
      check('Automatic failover', controls.autoFailover)),
    h('div.row', {},
      field('Monthly budget (USD)', controls.monthlyBudgetUsd, 'Empty: no budget.')[0],
      field('Budget action', controls.budgetAction)[0],
      field('Alert thresholds (%)', controls.alertThresholds, 'Comma separated, 1 to 100.')[0]),
    field('Failover order', controls.fallbackProviders,
      `Providers tried after the first, in order, comma separated. Empty: the registry's order. One of: ${providers.join(', ')}.`)[0],
    h('div.row', {},
      field('Azure resource', controls.azureResource, 'Your Azure OpenAI resource name (<name>.openai.azure.com).')[0],
      field('Azure deployments', controls.azureDeployments, 'model=deployment, comma separated.')[0]));

  const numberOr = (text) => (text.trim() !== '' && !Number.isNaN(Number(text)) ? Number(text) : text);
  const list = (text) => text.split(',').map((x) => x.trim()).filter(Boolean);

  function collect() {
    const p = {
      defaultProvider: controls.defaultProvider.value,
      maxTokens: numberOr(controls.maxTokens.value),
      temperature: numberOr(controls.temperature.value),
      enableCaching: controls.enableCaching.checked,
      trackUsage: controls.trackUsage.checked,
      monthlyBudgetUsd: controls.monthlyBudgetUsd.value.trim() === '' ? null : numberOr(controls.monthlyBudgetUsd.value),
      budgetAction: controls.budgetAction.value,
      alertThresholds: list(controls.alertThresholds.value).map(numberOr),
      autoFailover: controls.autoFailover.checked,
      fallbackProviders: list(controls.fallbackProviders.value),
      azureResource: controls.azureResource.value.trim() || null,
      azureDeployments: Object.fromEntries(list(controls.azureDeployments.value).map((pair) => {
        const at = pair.indexOf('=');
        return at < 0 ? [pair, ''] : [pair.slice(0, at).trim(), pair.slice(at + 1).trim()];
      })),
    };
    const map = {};
    for (const { op, select } of Object.values(selects)) {
      if (op.pref) {
        if (select.value) p[op.pref] = select.value;
      } else if (select.value) {
        map[op.map] = select.value;
      }
    }
    // Keep saved models for operations this page does not list.
    for (const [k, v] of Object.entries(prefs.models || {})) {
      if (!(k in map) && !OPERATIONS.some((o) => o.map === k)) map[k] = v;
    }
    p.models = map;
    // Only what changed: a field sent is a field the owner has set, and a tenant member's
    // unset fields keep following the tenant's.
    for (const k of Object.keys(p)) {
      if (JSON.stringify(p[k]) === JSON.stringify(k in prefs ? prefs[k] : null)) delete p[k];
    }
    const keys = {};
    for (const [prov, input] of Object.entries(keyInputs)) {
      if (input.value.trim()) keys[prov] = input.value.trim();
    }
    return { preferences: p, apiKeys: keys, version: state.settings.version };
  }

  const saveMsg = messageLine();
  const save = h('button.primary', {
    type: 'submit', text: 'Save settings',
  });
  const form = h('form', {
    novalidate: true,
    onsubmit: async (ev) => {
      ev.preventDefault();
      saveMsg.clear();
      for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
      save.disabled = true;
      try {
        const body = collect();
        state.settings = await put(base, body);
        Object.assign(prefs, state.settings.preferences);
        for (const input of Object.values(keyInputs)) input.value = '';
        drawCards();
        saveMsg.ok(`Settings saved (version ${state.settings.version})`);
      } catch (e) {
        saveMsg.error(describe(e));
        const m = /preferences\.(\w+)/.exec(e.message || '');
        const el = m && controls[m[1]];
        if (el) {
          el.setAttribute('aria-invalid', 'true');
          advanced.open = true;
          el.focus();
        }
        const k = /apiKeys\.(\w+)/.exec(e.message || '');
        if (k && keyInputs[k[1]]) keyInputs[k[1]].setAttribute('aria-invalid', 'true');
      } finally {
        save.disabled = false;
      }
    },
  }, keysSection, modelSection, h('h2', { text: 'Preferences' }), advanced,
  h('div.actions', {}, save), saveMsg);
  view.append(form);
}
