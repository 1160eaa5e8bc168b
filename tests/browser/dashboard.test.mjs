// The dashboard in a real browser: Debian's chromium, driven by playwright-core, against
// llm-local and a loopback fake OpenAI. Pages are used as a new user would, by label and
// role; the numbers they show are compared with what the API answers for the same
// question; screenshots of every page in light, dark and at a phone's width are written to
// tests/browser/artifacts/.
//
// Every page of every test also checks: no script error, no console error (a test that
// provokes a 4xx says so), no request to any other origin, and the saved key nowhere in
// the page or in anything the page received.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startFakeOpenAI, ANSWER } from './fake_upstream.mjs';
import { startGateway, readTree } from './gateway.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../..');
const ARTIFACTS = path.join(HERE, 'artifacts');
const BIN = process.env.LLM_LOCAL_BIN || path.join(ROOT, 'target/release/llm-local');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

// Shape-valid OpenAI keys; the fake refuses any containing "invalid".
const KEY = 'sk-proj-dashboardKey0123456789abcdefghijklmnopqrstuvwxyzQ7xZ';
const BAD_KEY = 'sk-proj-invalidKey0123456789abcdefghijklmnopqrstuvwxyzAAAA';
const MODEL = 'gpt-4.1-mini'; // $0.40 / $1.60 per 1M: 1,500 + 500 tokens cost $0.0014
const PROMPT = 'Show me failed login attempts';

let upstream;
let gw;
let browser;
let tokens;
const everythingReceived = []; // every response body any page got, for the leak search

before(async () => {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  upstream = await startFakeOpenAI();
  gw = await startGateway({ bin: BIN, upstream: upstream.url });
  tokens = {
    alice: gw.token('alice', '--tenant', 'acme', '--tenant-admin'),
    bob: gw.token('bob'),
    admin: gw.token('ops', '--admin'),
  };
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--disable-default-apps', '--disable-extensions'],
  });
});

after(async () => {
  if (browser) await browser.close();
  if (gw) await gw.stop();
  if (upstream) upstream.close();
});

/**
 * A fresh browser context (its own session storage) on the dashboard, signed in with
 * `token` unless null. `allowHttp` lists the statuses this test provokes on purpose.
 */
async function open(token, { allowHttp = [], viewport, colorScheme = 'light', hash = '#/settings' } = {}) {
  const context = await browser.newContext({ viewport: viewport || { width: 1280, height: 900 }, colorScheme, acceptDownloads: true });
  const problems = [];
  const offsite = [];
  const origin = new URL(gw.url).origin;
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith(origin) || url.startsWith('data:') || url.startsWith('blob:')) return route.continue();
    offsite.push(url);
    return route.abort();
  });
  context.setDefaultTimeout(8000);
  const page = await context.newPage();
  page.on('pageerror', (e) => problems.push(`script error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    const status = /status of (\d{3})/.exec(m.text());
    if (status && allowHttp.includes(Number(status[1]))) return;
    problems.push(`console error: ${m.text()}`);
  });
  page.on('response', async (r) => {
    if (r.status() >= 500) problems.push(`${r.status()} from ${r.url()}`);
    try {
      everythingReceived.push(await r.text());
    } catch (e) {
      // a download or a redirect has no body to read
    }
  });
  if (token) {
    await page.addInitScript((t) => sessionStorage.setItem('llm-gateway-token', t), token);
  }
  await page.goto(`${gw.url}/${hash}`);
  const done = async () => {
    assert.deepEqual(offsite, [], 'requests to another host');
    assert.deepEqual(problems, [], 'errors in the page');
    await context.close();
  };
  return { page, context, done };
}

/** The exact text of a JSON number field as the API wrote it. */
function literal(raw, field) {
  const m = new RegExp(`"${field}":(-?[0-9.eE+-]+|null)`).exec(raw);
  assert.ok(m, `${field} in ${raw.slice(0, 200)}`);
  return m[1];
}

const moneyText = (t) => t.replace(/[$,]/g, '');
const intText = (t) => t.replace(/,/g, '');

async function cardValue(page, label) {
  return page.locator(`[data-card="${label}"] .value`).textContent();
}

test('sign in with the keyboard, a wrong token is refused, sign out forgets the token', async () => {
  const { page, done } = await open(null, { allowHttp: [401] });
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  const field = page.getByLabel('Token');
  assert.ok(await field.evaluate((el) => el === document.activeElement), 'the Token field has focus');
  await page.keyboard.type('llmk_not-a-real-token');
  await page.keyboard.press('Enter');
  await page.getByRole('status').filter({ hasText: /token/i }).waitFor();
  await field.fill(tokens.bob);
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: 'Settings', level: 1 }).waitFor();
  assert.equal(await page.getByRole('link', { name: 'Admin' }).count(), 0);
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.length), 0);
  await done();
});

test('a sign-in redirect (#id_token=..., as Cognito\'s hosted UI returns) signs in and leaves no token in the URL', async () => {
  const { page, done } = await open(null, { hash: `#id_token=${tokens.bob}&token_type=Bearer&expires_in=3600` });
  await page.getByRole('heading', { name: 'Settings', level: 1 }).waitFor();
  assert.equal(new URL(page.url()).hash, '#/settings');
  assert.ok(!page.url().includes(tokens.bob));
  // The entry was replaced, not added: going back leaves the dashboard (to about:blank).
  await page.goBack();
  assert.ok(!page.url().includes(tokens.bob), page.url());
  await done();
});

test('save a key: the card says Configured with a masked hint, and the key is never in the page', async () => {
  const { page, done } = await open(tokens.alice, { allowHttp: [400] });
  const openai = page.locator('[data-provider="openai"]');
  await openai.getByText('Not configured').waitFor();
  await page.getByLabel('OpenAI API key', { exact: true }).fill(KEY);
  // The model for queries, with its exact price per 1M input + output tokens.
  await page.getByLabel('Query model').selectOption(MODEL);
  await page.getByText('$2 per 1M input + 1M output tokens (input $0.4, output $1.6)').waitFor();
  await page.getByText('Advanced settings').click();
  await page.getByLabel('Enable caching').uncheck();
  await page.getByLabel('Monthly budget (USD)').fill('5');
  // A field error first: nothing is saved and the field is named and marked.
  await page.getByLabel('Max tokens').fill('0');
  await page.getByRole('button', { name: 'Save settings' }).click();
  await page.getByRole('status').filter({ hasText: 'maxTokens' }).waitFor();
  assert.equal(await page.getByLabel('Max tokens').getAttribute('aria-invalid'), 'true');
  const unsaved = await gw.api(tokens.alice, 'GET', '/api/llm-settings/alice');
  assert.equal(unsaved.body.hasApiKeys.openai, false);

  await page.getByLabel('Max tokens').fill('800');
  await page.getByRole('button', { name: 'Save settings' }).click();
  await page.getByRole('status').filter({ hasText: 'Settings saved' }).waitFor();
  await openai.getByText('Configured', { exact: true }).waitFor();
  await openai.getByText(`Saved key …${KEY.slice(-4)}`).waitFor();
  assert.equal(await page.getByLabel('OpenAI API key', { exact: true }).inputValue(), '');
  for (const html of [await page.content(), await page.evaluate(() => JSON.stringify(sessionStorage))]) {
    assert.ok(!html.includes(KEY), 'the key is in the page');
  }
  await page.reload();
  await openai.getByText('Configured', { exact: true }).waitFor();
  assert.ok(!(await page.content()).includes(KEY));
  const saved = await gw.api(tokens.alice, 'GET', '/api/llm-settings/alice');
  assert.equal(saved.body.preferences.queryModel, MODEL);
  assert.equal(saved.body.preferences.maxTokens, 800);
  assert.equal(saved.body.preferences.enableCaching, false);
  assert.equal(saved.body.preferences.monthlyBudgetUsd, 5);
  await done();
});

test('test a connection: success with its latency, and a failing key with the reason', async () => {
  const { page, done } = await open(tokens.alice);
  await page.getByRole('button', { name: 'Test OpenAI connection' }).click();
  const ok = page.locator('[data-provider="openai"] [role="status"]');
  await ok.filter({ hasText: 'Connection successful' }).waitFor();
  assert.match(await ok.textContent(), /^Connection successful · \d+(\.\d+)? ms/);
  assert.ok(upstream.requests.some((r) => r.path === '/v1/models' && r.auth === `Bearer ${KEY}`));
  await page.getByLabel('OpenAI API key', { exact: true }).fill(BAD_KEY);
  await page.getByRole('button', { name: 'Test OpenAI connection' }).click();
  await ok.filter({ hasText: /invalid|rejected|unauthori/i }).waitFor();
  assert.doesNotMatch(await ok.textContent(), /successful/);
  await done();
});

test('the test page sends a prompt and shows content, tokens, cost and latency', async () => {
  const { page, done } = await open(tokens.alice, { hash: '#/test' });
  const value = await page.locator(`option[data-model="${MODEL}"]`).getAttribute('value');
  await page.getByLabel('Model', { exact: true }).selectOption(value);
  await page.getByLabel('Prompt').fill(PROMPT);
  await page.getByRole('button', { name: 'Send' }).click();
  await page.locator('[data-output="content"]').filter({ hasText: ANSWER }).waitFor();
  const row = page.getByRole('table', { name: 'Result' }).locator('tbody tr');
  const cells = await row.locator('td').allTextContents();
  assert.equal(cells[1], MODEL);
  assert.equal(cells[2], '1,500');
  assert.equal(cells[3], '500');
  assert.equal(cells[4], '$0.0014');
  assert.match(cells[5], /^\d+(\.\d+)? ms$/);
  await done();
});

test('usage: the cards, the breakdowns, the chart and the export equal the API', async () => {
  // Two more identical prompts (caching is off for alice: they reach the provider).
  for (let i = 0; i < 2; i += 1) {
    const r = await gw.api(tokens.alice, 'POST', '/api/llm-generate/alice', { prompt: PROMPT, model: MODEL });
    assert.equal(r.status, 200, r.text);
  }
  const { page, done } = await open(tokens.alice, { hash: '#/usage' });
  await page.locator('[data-card="Total cost"]').waitFor();
  const now = new Date();
  const day = (d) => d.toISOString().slice(0, 10);
  const today = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()));
  const start = day(new Date(today.getTime() - 29 * 86400000));
  const end = day(new Date(today.getTime() + 86400000));
  const sum = await gw.api(tokens.alice, 'GET', `/api/llm-usage/alice/summary?start=${start}&end=${end}`);
  assert.equal(sum.body.total_requests, 3);
  assert.equal(moneyText(await cardValue(page, 'Total cost')), literal(sum.text, 'total_cost_usd'));
  assert.equal(moneyText(await cardValue(page, 'Total cost')), '0.0042');
  assert.equal(intText(await cardValue(page, 'Requests')), String(sum.body.total_requests));
  assert.equal(intText(await cardValue(page, 'Tokens')), String(sum.body.total_tokens));
  assert.equal(moneyText(await cardValue(page, 'Avg cost / request')), literal(sum.text, 'avg_cost_per_request'));
  assert.equal(await cardValue(page, 'Success rate'), '100%');
  const modelRow = page.getByRole('table', { name: 'By model' }).locator(`tr[data-key="${MODEL}"] td`);
  const cells = await modelRow.allTextContents();
  assert.deepEqual(cells.slice(1), ['3', '6,000', '$0.0042']);

  const daily = await gw.api(tokens.alice, 'GET', '/api/llm-usage/alice/daily?days=30');
  const bars = page.locator('svg.chart rect.bar-rect');
  assert.equal(await bars.count(), daily.body.days.length);
  const todayRow = daily.body.days.find((d) => d.date === day(today));
  const bar = page.locator(`svg.chart rect[data-date="${day(today)}"]`);
  assert.equal(await bar.getAttribute('data-cost'), String(todayRow.cost_usd));
  assert.ok(Number(await bar.getAttribute('height')) > 100, 'the only day with spend is the tallest bar');

  const budget = await gw.api(tokens.alice, 'GET', '/api/llm-usage/alice/budget');
  const budgetText = await page.locator('[data-budget="text"]').textContent();
  assert.ok(budgetText.includes(`Spent $${literal(budget.text, 'spent_usd')} of $5`), budgetText);

  await page.getByLabel('Period').selectOption('7');
  await page.waitForFunction(() => document.querySelectorAll('svg.chart rect.bar-rect').length === 7);
  assert.equal(intText(await cardValue(page, 'Requests')), '3');

  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('button', { name: 'Export CSV' }).click(),
  ]);
  const csv = fs.readFileSync(await download.path(), 'utf8').trim().split('\n');
  assert.equal(csv.length, 1 + 3, 'a header and one row per request');
  assert.ok(csv[0].includes('request_id'));
  await done();
});

test('insights: repeated prompts and the forecast equal the API', async () => {
  const api = await gw.api(tokens.alice, 'GET', '/api/llm-usage/alice/insights?days=30');
  assert.equal(api.status, 200, api.text);
  const { page, done } = await open(tokens.alice, { hash: '#/insights' });
  const text = await page.locator('[data-insight="repeated"]').textContent();
  const r = api.body.repeated_prompts;
  assert.equal(r.repeated_requests, 2);
  assert.equal(r.distinct_prompts, 1);
  const repeatedRaw = api.text.slice(api.text.indexOf('"repeated_prompts"'));
  assert.ok(text.startsWith(`2 requests repeated 1 earlier prompt and cost $${literal(repeatedRaw, 'cost_usd')}`), text);
  assert.equal(literal(repeatedRaw, 'cost_usd'), '0.0028', 'two repeats of a $0.0014 request');
  assert.ok(text.includes('would have answered them'));
  assert.ok(!(await page.locator('main').textContent()).includes('null'), 'a null leaked into the page');
  // The cheaper models, row for row, with the exact saving.
  const cheaper = api.body.cheaper_models;
  assert.ok(cheaper.length >= 1, api.text);
  const first = cheaper[0];
  const cells = await page.getByRole('table', { name: 'Cheaper models' })
    .locator(`tr[data-key="${first.provider}/${first.model}"] td`).first().textContent();
  assert.ok(cells.startsWith(first.model));
  const rowTexts = await page.getByRole('table', { name: 'Cheaper models' }).locator('tbody tr').first().locator('td').allTextContents();
  const cheaperRaw = api.text.slice(api.text.indexOf('"cheaper_models"'));
  assert.equal(moneyText(rowTexts[6]), literal(cheaperRaw, 'saving_usd'));
  // The projection moves with the clock: compare with the very answer the page received.
  const [seen] = await Promise.all([
    page.waitForResponse((res) => res.url().includes('/insights?days=7')),
    page.getByLabel('Period').selectOption('7'),
  ]);
  const seenText = await seen.text();
  await page.waitForFunction((want) => [...document.querySelectorAll('[data-card="Projected month end"] .value')]
    .some((el) => el.textContent.replace(/[$,]/g, '') === want), literal(seenText, 'projected_usd'));
  assert.equal(moneyText(await cardValue(page, 'Spent this month')), literal(seenText, 'spent_usd'));
  await done();
});

test('an admin disables a model and the user\'s dropdown loses it', async () => {
  const admin = await open(tokens.admin, { hash: '#/admin' });
  const a = admin.page;
  await a.getByLabel('Search').fill(MODEL);
  await a.getByRole('button', { name: 'Search' }).click();
  const toggle = a.getByRole('switch', { name: `Enabled openai/${MODEL}` });
  await toggle.waitFor();
  assert.equal(await toggle.isChecked(), true);
  await toggle.click();
  await a.getByRole('status').filter({ hasText: `openai/${MODEL} disabled` }).waitFor();
  assert.equal(await a.getByRole('switch', { name: `Enabled openai/${MODEL}` }).isChecked(), false);

  const user = await open(tokens.alice);
  const options = await user.page.getByLabel('Query model').locator('option').evaluateAll((os) => os.map((o) => o.value));
  assert.ok(!options.includes(MODEL), 'the disabled model is still offered');
  await user.page.getByText(`Your saved model ${MODEL} is not available now`).first().waitFor();
  const models = await gw.api(tokens.alice, 'GET', '/api/llm-models');
  assert.ok(!models.body.models.some((m) => m.id === MODEL));
  await user.done();

  await a.getByRole('switch', { name: `Enabled openai/${MODEL}` }).click();
  await a.getByRole('status').filter({ hasText: `openai/${MODEL} enabled` }).waitFor();
  const again = await open(tokens.alice);
  await again.page.getByLabel('Query model').locator(`option[value="${MODEL}"]`).waitFor({ state: 'attached' });
  assert.equal(await again.page.getByLabel('Query model').inputValue(), MODEL);
  await again.done();
  await admin.done();
});

test('a non-admin sees no admin page, and the API refuses them too', async () => {
  const { page, done } = await open(tokens.bob, { hash: '#/admin' });
  await page.getByRole('heading', { name: 'Settings', level: 1 }).waitFor();
  assert.equal(await page.getByRole('link', { name: 'Admin' }).count(), 0);
  assert.equal(await page.getByRole('link', { name: 'Tenant' }).count(), 0);
  assert.equal(await page.getByRole('heading', { name: 'Model registry' }).count(), 0);
  assert.equal((await gw.api(tokens.bob, 'GET', '/api/admin/llms')).status, 403);
  await done();
});

test('admin: the add form shows the API\'s validation, then adds a model users can pick', async () => {
  const { page, done } = await open(tokens.admin, { hash: '#/admin', allowHttp: [400] });
  await page.getByRole('button', { name: 'Add model' }).click();
  const form = page.locator('form', { has: page.getByRole('button', { name: 'Add model' }) });
  await form.getByRole('status').filter({ hasText: 'name' }).waitFor();
  assert.equal(await form.getByLabel('Name', { exact: true }).getAttribute('aria-invalid'), 'true');
  // A literal key as the operator credential is refused, and not shown back.
  await form.getByLabel('Name', { exact: true }).fill('Team mini');
  await form.getByLabel('Provider', { exact: true }).selectOption('openai');
  await form.getByLabel('Model name').fill('gpt-4o-mini');
  await form.getByLabel('Priority').fill('1');
  await form.getByLabel('Operator credential').selectOption('api_key_env');
  await form.getByLabel('Credential reference').fill(KEY);
  await page.getByRole('button', { name: 'Add model' }).click();
  await form.getByRole('status').filter({ hasText: 'auth_meta' }).waitFor();
  assert.ok(!(await form.getByRole('status').textContent()).includes(KEY));
  await form.getByLabel('Operator credential').selectOption('');
  await page.getByRole('button', { name: 'Add model' }).click();
  await form.getByRole('status').filter({ hasText: 'Team mini saved' }).waitFor();
  await page.getByRole('switch', { name: 'Enabled Team mini' }).waitFor();
  const models = await gw.api(tokens.alice, 'GET', '/api/llm-models');
  assert.equal(models.body.models[0].name, 'Team mini', 'priority 1 lists first');
  await done();
});

test('admin: the audit trail, provider health and a user cap', async () => {
  const { page, done } = await open(tokens.admin, { hash: '#/admin' });
  await page.getByRole('heading', { name: 'Audit trail' }).waitFor();
  await page.getByLabel('Target').fill('user:alice');
  await page.getByRole('button', { name: 'Filter' }).click();
  const audit = await gw.api(tokens.admin, 'GET', '/api/admin/audit?target=user:alice');
  const rows = page.locator('section[aria-labelledby="audit-h"] tbody tr');
  await page.waitForFunction((n) => document.querySelectorAll('section[aria-labelledby="audit-h"] tbody tr').length === n,
    audit.body.events.length);
  assert.ok(audit.body.events.length >= 1);
  assert.ok((await rows.allTextContents()).join('\n').includes('alice'));

  const health = await gw.api(tokens.admin, 'GET', '/api/admin/providers/health');
  const openai = health.body.windows['24h'].providers.openai;
  const cells = await page.getByRole('table', { name: 'Providers, last 24h' }).locator('tr[data-key="openai"] td').allTextContents();
  assert.equal(cells[1], String(openai.requests));
  assert.equal(openai.requests, 3);

  await page.getByLabel('User id').fill('alice');
  await page.getByLabel('Monthly budget cap (USD)').fill('2');
  await page.getByLabel('Requests per minute').fill('100');
  await page.getByRole('button', { name: 'Save limits' }).click();
  await page.getByRole('status').filter({ hasText: 'Limits saved: budget $2, 100 requests per minute' }).waitFor();
  const budget = await gw.api(tokens.alice, 'GET', '/api/llm-usage/alice/budget');
  assert.equal(budget.body.limit_usd, 2);
  await done();
});

test('tenant admins see their tenant: usage, the last 24 hours and its keys', async () => {
  const { page, done } = await open(tokens.alice, { hash: '#/tenant' });
  await page.getByRole('heading', { name: 'Tenant acme' }).waitFor();
  const day = await gw.api(tokens.alice, 'GET', '/api/tenants/acme/llm-usage/last24h');
  const requests = day.body.models.reduce((n, m) => n + m.requests, 0);
  assert.equal(requests, 3);
  await page.locator('[data-provider="openai"]').getByText('Not configured').waitFor();
  const table = page.getByRole('table', { name: 'Last 24 hours' });
  assert.equal(await table.locator('tbody tr').count(), day.body.models.length);
  await done();
});

const PAGES = ['settings', 'usage', 'insights', 'test', 'admin', 'tenant'];

test('every page: labelled controls, light and dark screenshots, no horizontal scroll at 390 px', async () => {
  for (const [scheme, viewport, tag] of [
    ['light', { width: 1280, height: 900 }, 'light'],
    ['dark', { width: 1280, height: 900 }, 'dark'],
    ['light', { width: 390, height: 844 }, 'phone'],
  ]) {
    for (const name of PAGES) {
      const who = name === 'admin' ? tokens.admin : tokens.alice;
      const { page, done } = await open(who, { hash: `#/${name}`, viewport, colorScheme: scheme });
      await page.locator('main [aria-busy]').waitFor({ state: 'detached' });
      const unlabelled = await page.evaluate(() => [...document.querySelectorAll('input, select, textarea, button')]
        .filter((el) => !el.closest('[hidden]'))
        .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !el.textContent.trim())
        .map((el) => el.outerHTML.slice(0, 80)));
      assert.deepEqual(unlabelled, [], `unlabelled controls on ${name}`);
      const visible = await page.locator('main').innerText();
      assert.doesNotMatch(visible, /\bundefined\b|\bNaN\b|\bnull\b|\[object /, `${name} shows a missing value`);
      if (tag === 'phone') {
        const width = await page.evaluate(() => document.documentElement.scrollWidth);
        assert.ok(width <= 390, `${name} is ${width} px wide at 390`);
      }
      const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
      assert.equal(bg, scheme === 'dark' ? 'rgb(16, 16, 16)' : 'rgb(255, 255, 255)');
      await page.screenshot({ path: path.join(ARTIFACTS, `${name}-${tag}.png`), fullPage: true });
      await done();
    }
  }
});

test('the saved key is in no page, no response, no log line and no file of the data directory', async () => {
  for (const body of everythingReceived) assert.ok(!body.includes(KEY), 'a response held the key');
  assert.ok(!fs.readFileSync(gw.logPath, 'utf8').includes(KEY), 'the log holds the key');
  for (const f of readTree(gw.dataDir)) assert.ok(!f.text.includes(KEY), `${f.path} holds the key`);
  assert.ok(everythingReceived.length > 50, 'the pages were exercised');
});
