// Small SVG charts drawn at the container's pixel size (so text stays
// crisp and readable), redrawn when the container is resized: a horizontal
// bar chart, a line chart over time, and the admin view's history chart.
// Colours and fonts come from CSS classes; geometry from attributes.

import { formatCompact, formatNumber, svg } from './dom.js';

export const COLORS = ['#2350c8', '#0f7b5f', '#c2410c', '#7c3aed', '#b42318', '#0e7490', '#a16207', '#be185d'];

const draws = new WeakMap();
const observer =
  typeof ResizeObserver === 'function'
    ? new ResizeObserver((entries) => {
        for (const entry of entries) {
          const draw = draws.get(entry.target);
          if (draw) draw();
        }
      })
    : null;

/** Stops redrawing a chart whose container leaves the page. */
export function forget(container) {
  draws.delete(container);
  if (observer) observer.unobserve(container);
}

/**
 * Puts an `<svg data-chart=kind>` in `container` and draws it with
 * `draw(width, height)`, which returns `{nodes, height}`; again whenever
 * the container's size changes. Each drawing fires a bubbling
 * `chart-drawn` event on the container.
 */
function mount(container, kind, label, draw) {
  container.classList.add('chart');
  // A bar chart's height follows its rows, not its box: it stays in the flow.
  container.classList.toggle('flow', kind === 'bar');
  let el = container.querySelector(':scope > svg[data-chart]');
  if (!el || el.dataset.chart !== kind) {
    el = svg('svg', { 'data-chart': kind, role: 'img', xmlns: 'http://www.w3.org/2000/svg' });
    container.replaceChildren(el);
  }
  el.setAttribute('aria-label', label);
  let last = '';
  const render = () => {
    if (!container.isConnected) return;
    const width = Math.max(160, Math.floor(container.clientWidth));
    const height = Math.max(140, Math.floor(container.clientHeight));
    const size = `${width}x${height}`;
    if (size === last) return;
    last = size;
    const drawn = draw(width, height);
    el.setAttribute('width', width);
    el.setAttribute('height', drawn.height);
    el.setAttribute('viewBox', `0 0 ${width} ${drawn.height}`);
    el.replaceChildren(svg('title', {}, label), ...drawn.nodes);
    container.dispatchEvent(new Event('chart-drawn', { bubbles: true }));
  };
  draws.set(container, render);
  if (observer) observer.observe(container);
  requestAnimationFrame(render);
  render();
  return el;
}

/** Round tick values covering [min, max]. */
export function ticks(min, max, count = 4) {
  if (!(max > min)) {
    max = min + (min === 0 ? 1 : Math.abs(min));
  }
  const raw = (max - min) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
  const first = Math.floor(min / step) * step;
  const out = [];
  for (let v = first; v <= max + step * 0.5; v += step) out.push(Number(v.toPrecision(12)));
  if (out[out.length - 1] < max) out.push(out[out.length - 1] + step);
  return out;
}

const CHAR_PX = 7.2;

function clip(text, px) {
  const room = Math.max(3, Math.floor(px / CHAR_PX));
  return text.length > room ? `${text.slice(0, room - 1)}…` : text;
}

function summary(prefix, pairs) {
  const shown = pairs.slice(0, 8).map(([k, v]) => `${k} ${formatNumber(v)}`);
  return `${prefix}: ${shown.join('; ')}${pairs.length > 8 ? `; and ${pairs.length - 8} more` : ''}`;
}

const MAX_BARS = 60;

/**
 * A horizontal bar chart of `points` ([{label, value}]), in given order.
 */
export function barChart(container, points, { title = 'Bar chart' } = {}) {
  const shown = points.slice(0, MAX_BARS);
  const label = summary(title, shown.map((p) => [p.label, p.value]));
  return mount(container, 'bar', label, (width) => {
    if (!shown.length) return { nodes: [svg('text', { x: 0, y: 16, class: 'chart-text' }, 'No rows')], height: 24 };
    const values = shown.map((p) => (Number.isFinite(p.value) ? p.value : 0));
    const lo = Math.min(0, ...values);
    const hi = Math.max(0, ...values);
    const labelW = Math.min(width * 0.38, Math.max(...shown.map((p) => p.label.length)) * CHAR_PX + 10);
    const valueW = Math.max(...values.map((v) => formatNumber(v).length)) * 6.4 + 10;
    const plotW = Math.max(20, width - labelW - valueW);
    const rowH = shown.length > 12 ? 20 : 26;
    const barH = rowH - (shown.length > 12 ? 6 : 9);
    const scale = (v) => ((v - lo) / (hi - lo || 1)) * plotW;
    const zero = labelW + scale(0);
    const nodes = [];
    shown.forEach((p, i) => {
      const v = values[i];
      const y = 4 + i * rowH;
      const x0 = Math.min(zero, labelW + scale(v));
      const w = Math.max(v === 0 ? 0 : 1.5, Math.abs(scale(v) - scale(0)));
      nodes.push(
        svg(
          'g',
          { 'data-label': p.label, 'data-point': String(p.value) },
          svg('text', { x: labelW - 8, y: y + barH / 2 + 4, 'text-anchor': 'end', class: 'chart-label' }, clip(p.label, labelW - 10)),
          svg('rect', { x: x0, y, width: w, height: barH, rx: 3, class: 'chart-bar' }, svg('title', {}, `${p.label}: ${formatNumber(p.value)}`)),
          svg('text', { x: v < 0 ? x0 - 4 : x0 + w + 5, y: y + barH / 2 + 4, 'text-anchor': v < 0 ? 'end' : 'start', class: 'chart-value' }, formatNumber(p.value)),
        ),
      );
    });
    if (lo < 0) nodes.push(svg('line', { x1: zero, x2: zero, y1: 0, y2: shown.length * rowH + 4, class: 'chart-axis' }));
    if (points.length > shown.length) {
      nodes.push(svg('text', { x: labelW, y: shown.length * rowH + 18, class: 'chart-text' }, `First ${shown.length} of ${points.length} rows`));
      return { nodes, height: shown.length * rowH + 26 };
    }
    return { nodes, height: shown.length * rowH + 6 };
  });
}

function timeFormat(spanMs) {
  const day = 86400000;
  if (spanMs > 400 * day) return new Intl.DateTimeFormat('en-US', { month: 'short', year: 'numeric', timeZone: 'UTC' });
  if (spanMs > 2 * day) return new Intl.DateTimeFormat('en-US', { month: 'short', day: 'numeric', timeZone: 'UTC' });
  if (spanMs > 10 * 60000) return new Intl.DateTimeFormat('en-US', { hour: '2-digit', minute: '2-digit', hour12: false, timeZone: 'UTC' });
  return new Intl.DateTimeFormat('en-GB', { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
}

/** A path through points, broken where y is null. */
function linePath(points, sx, sy) {
  let d = '';
  let pen = false;
  for (const p of points) {
    if (p.y === null || !Number.isFinite(p.y)) {
      pen = false;
      continue;
    }
    d += `${pen ? 'L' : 'M'}${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`;
    pen = true;
  }
  return d;
}

/**
 * One plot area: y grid and labels, x labels when asked, and the series.
 * `box` is {x, y, w, h}; `yFmt` formats a y tick.
 */
function plot(box, series, { xMin, xMax, yMin, yMax, yFmt, xLabels, area, dots }) {
  const nodes = [];
  const yt = ticks(yMin, yMax, box.h < 90 ? 2 : 4);
  const y0 = yt[0];
  const y1 = yt[yt.length - 1];
  const sx = (x) => box.x + ((x - xMin) / (xMax - xMin || 1)) * box.w;
  const sy = (y) => box.y + box.h - ((y - y0) / (y1 - y0 || 1)) * box.h;
  for (const t of yt) {
    nodes.push(svg('line', { x1: box.x, x2: box.x + box.w, y1: sy(t), y2: sy(t), class: 'chart-grid' }));
    nodes.push(svg('text', { x: box.x - 6, y: sy(t) + 4, 'text-anchor': 'end', class: 'chart-text' }, yFmt(t)));
  }
  if (xLabels) {
    const fmt = timeFormat(xMax - xMin);
    const n = Math.max(2, Math.min(8, Math.floor(box.w / 95)));
    for (let i = 0; i < n; i += 1) {
      const x = xMin + ((xMax - xMin) * i) / (n - 1);
      nodes.push(svg('text', { x: sx(x), y: box.y + box.h + 16, 'text-anchor': i === 0 ? 'start' : i === n - 1 ? 'end' : 'middle', class: 'chart-text' }, fmt.format(new Date(x))));
    }
  }
  series.forEach((s, i) => {
    const color = s.color || COLORS[i % COLORS.length];
    const d = linePath(s.points, sx, sy);
    if (!d) return;
    const valid = s.points.filter((p) => p.y !== null && Number.isFinite(p.y));
    // An area only under an unbroken line: a gap would close it wrongly.
    if (area && series.length === 1 && valid.length === s.points.length) {
      const base = sy(Math.max(y0, Math.min(0, y1)));
      const fill = `${d}L${sx(valid[valid.length - 1].x).toFixed(1)},${base.toFixed(1)}L${sx(valid[0].x).toFixed(1)},${base.toFixed(1)}Z`;
      nodes.push(svg('path', { d: fill, fill: color, class: 'chart-area' }));
    }
    nodes.push(svg('path', { d, stroke: color, class: 'chart-line', 'data-series': s.name }));
    if (dots) {
      // Every point carries its label and value for scripts and tests, as
      // bars do; past 60 points the dots are not drawn (r = 0).
      const shown = s.points.length <= 60;
      for (const p of s.points) {
        if (p.y === null || !Number.isFinite(p.y)) continue;
        const data = { 'data-label': p.label ?? '', 'data-point': String(p.y) };
        nodes.push(
          shown
            ? svg('circle', { cx: sx(p.x), cy: sy(p.y), r: 2.6, fill: color, ...data }, svg('title', {}, `${s.name ? `${s.name}, ` : ''}${p.label ?? ''}: ${formatNumber(p.y)}`))
            : svg('circle', { cx: sx(p.x), cy: sy(p.y), r: 0, ...data }),
        );
      }
    }
  });
  return nodes;
}

function extent(series, key) {
  let lo = Infinity;
  let hi = -Infinity;
  for (const s of series)
    for (const p of s.points)
      if (p[key] !== null && Number.isFinite(p[key])) {
        lo = Math.min(lo, p[key]);
        hi = Math.max(hi, p[key]);
      }
  return [lo, hi];
}

/**
 * A line chart over time: `series` is [{name, points: [{x: ms, y, label}]}].
 */
export function lineChart(container, series, { title = 'Line chart' } = {}) {
  const first = series[0] ? series[0].points : [];
  const label = summary(`${title}, ${first.length} points`, first.slice(-8).map((p) => [p.label, p.y]));
  return mount(container, 'line', label, (width, height) => {
    const [xMin, xMax] = extent(series, 'x');
    const [yLo, yHi] = extent(series, 'y');
    if (!Number.isFinite(xMin)) return { nodes: [svg('text', { x: 0, y: 16, class: 'chart-text' }, 'No rows')], height: 24 };
    const yMax = Math.max(0, yHi);
    const yMin = Math.min(0, yLo);
    const yLabelW = Math.max(...ticks(yMin, yMax).map((t) => formatCompact(t).length)) * 6.4 + 10;
    const legend = series.length > 1;
    const top = legend ? 26 : 8;
    const box = { x: yLabelW, y: top, w: width - yLabelW - 14, h: height - top - 24 };
    const nodes = plot(box, series, { xMin, xMax, yMin, yMax, yFmt: formatCompact, xLabels: true, area: true, dots: true });
    if (legend) {
      let x = yLabelW;
      series.slice(0, 8).forEach((s, i) => {
        const name = clip(s.name, 120);
        nodes.push(svg('rect', { x, y: 6, width: 10, height: 10, rx: 2, fill: COLORS[i % COLORS.length] }));
        nodes.push(svg('text', { x: x + 14, y: 15, class: 'chart-label' }, name));
        x += 24 + name.length * CHAR_PX;
      });
    }
    return { nodes, height };
  });
}

export const HISTORY_COLORS = { hitRate: COLORS[0], cached: COLORS[1], uncached: COLORS[2] };

/**
 * The admin view's history: hit rate (top) and cached / uncached latency
 * (bottom) per sample. `samples` are the stats' `history` entries.
 */
export function historyChart(container, samples) {
  const at = (s) => Date.parse(s.at);
  const rate = samples.map((s) => ({ x: at(s), y: typeof s.hit_rate === 'number' ? s.hit_rate * 100 : null, label: s.at }));
  const cached = samples.map((s) => ({ x: at(s), y: typeof s.cached_ms === 'number' ? s.cached_ms : null, label: s.at }));
  const uncached = samples.map((s) => ({ x: at(s), y: typeof s.uncached_ms === 'number' ? s.uncached_ms : null, label: s.at }));
  const lastRate = [...rate].reverse().find((p) => p.y !== null);
  const label = `Hit rate and latency over the last ${Math.round((samples.length * 5) / 60)} minutes${lastRate ? `; latest hit rate ${Math.round(lastRate.y)}%` : ''}`;
  return mount(container, 'history', label, (width, height) => {
    if (samples.length < 2) return { nodes: [svg('text', { x: 0, y: 16, class: 'chart-text' }, 'Collecting samples (one every 5 s)…')], height: 24 };
    const xMin = at(samples[0]);
    const xMax = at(samples[samples.length - 1]);
    const [, latHi] = extent([{ points: cached }, { points: uncached }], 'y');
    const latMax = Number.isFinite(latHi) ? latHi : 1;
    const yLabelW = Math.max(46, Math.max(...ticks(0, latMax).map((t) => formatCompact(t).length + 3)) * 6.4 + 10);
    const w = width - yLabelW - 14;
    const gap = 26;
    const topH = Math.floor((height - gap - 22) * 0.45);
    const botH = height - gap - 22 - topH - 14;
    const nodes = [
      svg('text', { x: yLabelW, y: 10, class: 'chart-label' }, 'Hit rate'),
      ...plot({ x: yLabelW, y: 16, w, h: topH - 16 }, [{ name: 'hit rate', color: HISTORY_COLORS.hitRate, points: rate }], { xMin, xMax, yMin: 0, yMax: 100, yFmt: (t) => `${t}%`, area: true }),
      svg('text', { x: yLabelW, y: topH + gap, class: 'chart-label' }, 'Latency (mean per 5 s)'),
      ...plot(
        { x: yLabelW, y: topH + gap + 8, w, h: botH },
        [
          { name: 'cached', color: HISTORY_COLORS.cached, points: cached },
          { name: 'uncached', color: HISTORY_COLORS.uncached, points: uncached },
        ],
        { xMin, xMax, yMin: 0, yMax: latMax, yFmt: (t) => `${formatCompact(t)} ms`, xLabels: true },
      ),
    ];
    return { nodes, height };
  });
}
