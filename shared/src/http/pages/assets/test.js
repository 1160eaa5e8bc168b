// The test page: one prompt to a chosen model through POST /api/llm-generate, showing
// what came back and what it cost, and every failed attempt before it.

import { get, post, seg, describe, ApiError } from './api.js';
import { h, field, table, td, messageLine } from './dom.js';
import { usd, int, ms } from './format.js';
import { providerName } from './providers.js';
import { chatModels, modelLabel } from './settings.js';

function attemptError(e) {
  if (e === null || e === undefined) return '';
  if (typeof e === 'string') return e;
  return e.code || e.kind || JSON.stringify(e);
}

export function attemptsTable(attempts) {
  if (!attempts || !attempts.length) return h('p.muted', { text: 'Answered at the first attempt.' });
  return table(['Provider', 'Model', 'Failure', '#Latency'], attempts.map((a) => h('tr', {},
    td(providerName(a.provider)), td(a.model), td(attemptError(a.error)), td(ms(a.latency_ms), true))), 'Attempts');
}

export async function render(view, { me }) {
  const catalog = await get('/api/llm-models');
  const models = chatModels(catalog.models || []);
  const model = h('select', { name: 'model' },
    h('option', { value: '', text: 'My preference for the operation' }),
    models.map((m) => h('option', { value: m.llm_id, 'data-model': m.id, text: modelLabel(m) })));
  const prompt = h('textarea', { name: 'prompt', required: true, rows: 4 });
  const maxTokens = h('input', { type: 'number', min: 1, step: 1, name: 'maxTokens', placeholder: 'From settings' });
  const msg = messageLine();
  const out = h('div', { 'aria-live': 'polite' });
  const send = h('button.primary', { type: 'submit', text: 'Send' });
  const form = h('form', {
    onsubmit: async (ev) => {
      ev.preventDefault();
      msg.clear();
      out.replaceChildren();
      if (!prompt.value.trim()) {
        msg.error('Write a prompt first.');
        prompt.setAttribute('aria-invalid', 'true');
        prompt.focus();
        return;
      }
      prompt.removeAttribute('aria-invalid');
      const body = { prompt: prompt.value };
      if (model.value) body.llmId = model.value;
      if (maxTokens.value) body.maxTokens = Number(maxTokens.value);
      send.disabled = true;
      try {
        const r = await post(`/api/llm-generate/${seg(me.userId)}`, body);
        const u = r.usage || {};
        out.replaceChildren(
          h('h2', { text: 'Answer' }),
          h('pre.output', { 'data-output': 'content', text: r.content === null || r.content === undefined ? '' : r.content }),
          table(['Provider', 'Model', '#Input tokens', '#Output tokens', '#Cost', '#Latency', 'Cached', 'Request id'], [
            h('tr', {}, td(providerName(r.provider)), td(r.model), td(int(u.input_tokens), true),
              td(int(u.output_tokens), true), td(usd(u.cost_usd), true), td(ms(u.latency_ms), true),
              td(r.cached ? 'yes' : 'no'), td(r.requestId)),
          ], 'Result'),
          h('h3', { text: 'Attempts' }), attemptsTable(r.attempts));
        msg.ok('Done');
      } catch (e) {
        msg.error(describe(e));
        const attempts = e instanceof ApiError ? e.details.attempts : null;
        if (attempts && attempts.length) out.append(h('h3', { text: 'Attempts' }), attemptsTable(attempts));
      } finally {
        send.disabled = false;
      }
    },
  }, field('Model', model)[0], field('Prompt', prompt)[0], field('Max tokens', maxTokens)[0],
  h('div.actions', {}, send), msg);
  view.append(form, out);
}
