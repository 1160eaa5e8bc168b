// The dashboard's shell: sign in, the navigation, and one page at a time by the URL's
// hash (#/settings, #/usage, ...). Pages are modules that render into <main>.

import { get, setToken, token, describe } from './api.js';
import { h, field, messageLine } from './dom.js';
import * as settings from './settings.js';
import * as usage from './usage.js';
import * as insights from './insights.js';
import * as testPage from './test.js';
import * as admin from './admin.js';
import * as tenant from './tenant.js';

const PAGES = [
  { path: 'settings', title: 'Settings', page: settings, show: () => true },
  { path: 'usage', title: 'Usage', page: usage, show: () => true },
  { path: 'insights', title: 'Insights', page: insights, show: () => true },
  { path: 'test', title: 'Test', page: testPage, show: () => true },
  { path: 'admin', title: 'Admin', page: admin, show: (me) => me.admin },
  { path: 'tenant', title: 'Tenant', page: tenant, show: (me) => Boolean(me.tenantId) && (me.tenantAdmin || me.admin) },
];

const main = document.getElementById('main');
let me = null;
let rendering = 0;

// A Cognito hosted-UI sign-in (implicit grant) comes back with #id_token=... in the URL:
// keep the token for this tab and drop it from the address bar and history.
function takeTokenFromRedirect() {
  const hash = window.location.hash;
  if (!hash.includes('id_token=')) return;
  const params = new URLSearchParams(hash.slice(1));
  const t = params.get('id_token');
  if (t) setToken(t);
  window.history.replaceState(null, '', `${window.location.pathname}#/settings`);
}

function signIn(reason) {
  document.getElementById('top').hidden = true;
  const msg = messageLine();
  if (reason) msg.error(reason);
  const [tokenField, input] = field('Token', h('input', {
    type: 'password', name: 'token', autocomplete: 'off', required: true,
  }), 'Locally: llm-local token create --user <id>. On AWS: the ID token of the Cognito sign-in.');
  const form = h('form.signin', {
    onsubmit: async (ev) => {
      ev.preventDefault();
      msg.clear();
      setToken(input.value.trim());
      try {
        me = await get('/api/me');
        input.value = '';
        if (!window.location.hash || window.location.hash === '#/signin') window.location.hash = '#/settings';
        start();
      } catch (e) {
        setToken(null);
        msg.error(e.status === 401
          ? 'That token was not accepted: it may be mistyped, expired or revoked.'
          : describe(e));
      }
    },
  }, h('h1', { text: 'Sign in' }), tokenField,
  h('div.actions', {}, h('button.primary', { type: 'submit', text: 'Sign in' })), msg);
  main.replaceChildren(form);
  input.focus();
}

function nav(current) {
  const links = PAGES.filter((p) => p.show(me)).map((p) => h('a', {
    href: `#/${p.path}`, 'aria-current': p.path === current ? 'page' : undefined, text: p.title,
  }));
  document.getElementById('nav').replaceChildren(...links);
  const who = [me.userId];
  if (me.admin) who.push('admin');
  if (me.tenantId) who.push(`tenant ${me.tenantId}${me.tenantAdmin ? ' (admin)' : ''}`);
  document.getElementById('who').textContent = who.join(' · ');
}

async function route() {
  if (!me) return;
  const path = (window.location.hash.replace(/^#\/?/, '').split('?')[0]) || 'settings';
  const entry = PAGES.find((p) => p.path === path && p.show(me));
  if (!entry) {
    window.location.hash = '#/settings';
    return;
  }
  nav(entry.path);
  document.title = `${entry.title} · LLM Gateway`;
  const mine = ++rendering;
  const view = h('div', { 'aria-busy': 'true' }, h('h1', { text: entry.title }));
  main.replaceChildren(view);
  try {
    await entry.page.render(view, { me, stale: () => mine !== rendering });
  } catch (e) {
    if (mine === rendering) view.append(h('p.message.error', { role: 'alert', text: describe(e) }));
  }
  view.removeAttribute('aria-busy');
}

function start() {
  document.getElementById('top').hidden = false;
  route();
}

async function boot() {
  takeTokenFromRedirect();
  window.addEventListener('hashchange', route);
  window.addEventListener('gateway:unauthorized', () => {
    // While signing in, a refused token is the sign-in form's own message.
    if (!me) return;
    setToken(null);
    me = null;
    signIn('Your session has ended. Sign in again.');
  });
  document.getElementById('signout').addEventListener('click', () => {
    setToken(null);
    me = null;
    window.location.hash = '#/signin';
    signIn();
  });
  if (!token()) {
    signIn();
    return;
  }
  try {
    me = await get('/api/me');
    start();
  } catch (e) {
    setToken(null);
    signIn(describe(e));
  }
}

boot();
