// How a widget-data result is shown, by what its data source asks for:
// a time bucket is a line chart, a groupBy a bar chart, one row of numbers
// a big number, anything else a table. Shared by the dashboard and the
// playground.

import { barChart, lineChart } from './charts.js';
import { dataTable, formatNumber, h } from './dom.js';

/** The groupBy columns of a data source, as a list. */
export function groupColumns(source) {
  const g = source && source.groupBy;
  if (Array.isArray(g)) return g.filter((c) => typeof c === 'string');
  return typeof g === 'string' && g ? [g] : [];
}

/** The measure names in result rows: what is neither a group nor the bucket. */
export function measureNames(source, rows) {
  const skip = new Set([...groupColumns(source), 'bucket']);
  const names = [];
  for (const row of rows) for (const key of Object.keys(row)) if (!skip.has(key) && !names.includes(key)) names.push(key);
  return names;
}

/** 'line', 'bar' or null: the chart a data source's result gets. */
export function chartKind(source) {
  if (source && source.timeBucket) return 'line';
  if (groupColumns(source).length) return 'bar';
  return null;
}

const groupLabel = (row, groups) => groups.map((g) => (row[g] === null || row[g] === undefined ? '(none)' : String(row[g]))).join(' · ');

/** What the single measure of a plain data source is, in words. */
export function measureTitle(source) {
  if (!source) return 'value';
  const fn = source.aggregation || 'count';
  if (fn === 'count' && !source.column) return 'rows';
  return `${fn.replace('_', ' ')} of ${source.column}`;
}

/**
 * Draws the chart for `rows` into `container` and returns its svg, or null
 * when the data source asks for no chart.
 */
export function drawChart(container, source, rows, title) {
  const kind = chartKind(source);
  const measure = measureNames(source, rows)[0];
  const groups = groupColumns(source);
  const value = (row) => (typeof row[measure] === 'number' ? row[measure] : Number(row[measure]));
  if (kind === 'bar') {
    return barChart(container, rows.map((row) => ({ label: groupLabel(row, groups), value: value(row) })), { title: `${title}: ${measure} by ${groups.join(', ')}` });
  }
  if (kind === 'line') {
    const bySeries = new Map();
    rows.forEach((row, i) => {
      const name = groups.length ? groupLabel(row, groups) : measure;
      const t = Date.parse(row.bucket);
      if (!bySeries.has(name)) bySeries.set(name, []);
      bySeries.get(name).push({ x: Number.isFinite(t) ? t : i, y: value(row), label: String(row.bucket ?? i) });
    });
    const series = [...bySeries].map(([name, points]) => ({ name, points: points.sort((a, b) => a.x - b.x) }));
    return lineChart(container, series, { title: `${title}: ${measure} per ${source.timeBucket.granularity || 'bucket'}` });
  }
  return null;
}

/** One row of numbers as big figures, each in an element with `data-value`. */
export function metric(source, row) {
  const names = Object.keys(row);
  return h(
    'div',
    { class: 'metric' },
    names.map((name) => {
      const v = row[name];
      return h(
        'div',
        { class: 'metric-item' },
        h('data', { class: 'metric-value', value: v ?? '', 'data-value': v ?? '' }, v === null ? '—' : formatNumber(v)),
        h('span', { class: 'metric-label' }, name === 'value' && names.length === 1 ? measureTitle(source) : name),
      );
    }),
  );
}

/** True when the result is one row of numbers (or nulls): a metric. */
export function isMetric(source, rows) {
  return !chartKind(source) && rows.length === 1 && Object.values(rows[0]).every((v) => v === null || typeof v === 'number');
}

/**
 * Renders a result into `container` and returns what it drew:
 * 'line', 'bar', 'metric' or 'table'.
 */
export function renderResult(container, source, rows, title) {
  const kind = chartKind(source);
  if (kind) {
    const place = h('div', { class: 'chart' });
    container.replaceChildren(place);
    drawChart(place, source, rows, title);
    return kind;
  }
  if (isMetric(source, rows)) {
    container.replaceChildren(metric(source, rows[0]));
    return 'metric';
  }
  if (!rows.length) {
    container.replaceChildren(h('p', { class: 'muted small' }, 'No rows match.'));
    return 'table';
  }
  container.replaceChildren(h('div', { class: 'table-wrap' }, dataTable(rows)));
  return 'table';
}
