// DOM helpers. Text always goes in through textContent, never innerHTML: model names,
// descriptions and error messages come from other people and must never become markup.

let ids = 0;

/** A fresh element id, for pairing labels with their controls. */
export function uid(prefix) {
  ids += 1;
  return `${prefix}-${ids}`;
}

/** h('tag.class', {attr: value, onclick: fn}, ...children) */
export function h(spec, attrs, ...children) {
  const [tag, ...classes] = spec.split('.');
  const el = document.createElement(tag);
  if (classes.length) el.className = classes.join(' ');
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'value') el.value = v;
    else if (k === 'checked') el.checked = true;
    else if (k === 'text') el.textContent = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Same as h() but for SVG elements. */
export function s(tag, attrs, ...children) {
  const el = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  append(el, children);
  return el;
}

/** A labelled control: returns [wrapper, control]. */
export function field(labelText, control, hint) {
  const id = control.id || uid('f');
  control.id = id;
  const wrap = h('div', {}, h('label', { for: id, text: labelText }), control);
  if (hint) wrap.append(h('p.hint', { text: hint }));
  return [wrap, control];
}

/** A status line that screen readers announce. */
export function messageLine() {
  const el = h('div.message', { role: 'status', 'aria-live': 'polite' });
  el.ok = (text) => { el.className = 'message ok'; el.textContent = text; };
  el.error = (text) => { el.className = 'message error'; el.textContent = text; };
  el.clear = () => { el.className = 'message'; el.textContent = ''; };
  return el;
}

export function table(headers, rows, caption) {
  const head = h('tr', {}, headers.map((t) => {
    const num = t.startsWith('#');
    return h(num ? 'th.num' : 'th', { scope: 'col', text: num ? t.slice(1) : t });
  }));
  const t = h('table', {}, caption ? h('caption.skip', { text: caption }) : null,
    h('thead', {}, head), h('tbody', {}, rows));
  return h('div.table-wrap', {}, t);
}

/** A table cell; numbers right-aligned. */
export function td(content, num) {
  return h(num ? 'td.num' : 'td', {}, content);
}
