// The daily cost chart: one SVG bar per day. Heights are display only (floats are fine
// for pixels); each bar's title and the table beside it carry the exact amount.

import { s, h, table, td } from './dom.js';
import { usd, int } from './format.js';

export function dailyChart(days, caption) {
  const width = 700;
  const height = 200;
  const pad = { left: 8, right: 8, top: 10, bottom: 22 };
  const max = Math.max(0, ...days.map((d) => Number(d.cost_usd) || 0));
  const slot = (width - pad.left - pad.right) / Math.max(days.length, 1);
  const inner = height - pad.top - pad.bottom;
  const svg = s('svg', {
    class: 'chart', viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': caption,
    preserveAspectRatio: 'none',
  });
  svg.append(s('line', {
    class: 'axis', x1: pad.left, x2: width - pad.right, y1: height - pad.bottom, y2: height - pad.bottom,
  }));
  days.forEach((d, i) => {
    const cost = Number(d.cost_usd) || 0;
    const barH = max > 0 ? Math.max((cost / max) * inner, cost > 0 ? 1 : 0) : 0;
    const x = pad.left + i * slot + slot * 0.15;
    const rect = s('rect', {
      class: 'bar-rect', x: x.toFixed(2), width: (slot * 0.7).toFixed(2),
      y: (height - pad.bottom - barH).toFixed(2), height: barH.toFixed(2),
      'data-date': d.date, 'data-cost': String(d.cost_usd),
    }, s('title', {}, `${d.date}: ${usd(d.cost_usd)}, ${int(d.requests)} requests`));
    svg.append(rect);
  });
  const every = Math.max(1, Math.ceil(days.length / 7));
  days.forEach((d, i) => {
    if (i % every !== 0 && i !== days.length - 1) return;
    svg.append(s('text', {
      x: (pad.left + i * slot + slot / 2).toFixed(2), y: height - 6, 'text-anchor': 'middle',
    }, d.date.slice(5)));
  });
  const rows = days.map((d) => h('tr', {}, td(d.date), td(int(d.requests), true),
    td(int(d.tokens), true), td(usd(d.cost_usd), true), td(int(d.errors), true)));
  const details = h('details', {}, h('summary', { text: 'Daily numbers' }),
    table(['Date', '#Requests', '#Tokens', '#Cost', '#Errors'], rows, caption));
  return h('figure', { 'aria-label': caption }, svg, details);
}
