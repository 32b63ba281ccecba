// The playground (/playground): a data source edited as a form or as JSON
// (kept in sync), run against /functions/v1/widget-data, shown as a table
// and a chart, with x-cache, the timing, the SQL (service_role only),
// copyable snippets, and "save as widget".

import { WIDGET_DATA, call, defaultSize, insertWidget, listDashboards, listWidgets, loadSchema, nextFreeRow, queryWidget } from './api.js';
import { forget } from './charts.js';
import { clearErrors, copyButton, dataTable, formatMs, formatNumber, h, replace, showError } from './dom.js';
import { chartKind, drawChart } from './results.js';
import { boot } from './session.js';
import { SourceEditor, WIDGET_TYPES, inputFor, showApiError } from './source-form.js';

const $ = (id) => document.getElementById(id);

const state = { session: null, editor: null, tab: 'form', dashboards: [], typeTouched: false };

boot(async (session) => {
  state.session = session;
  const form = $('source-form');
  state.editor = new SourceEditor(form, $('source-fields'), { prefix: 'source', onChange: sourceChanged });
  setupTabs();
  $('json').addEventListener('input', jsonChanged);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    run();
  });
  setupSave();
  setupSql();
  snippetButtons();
  let schema;
  try {
    schema = await loadSchema();
  } catch (e) {
    showError(form, 'form', `Could not read the tables you may query: ${e.message}`);
    return;
  }
  state.editor.setSchema(schema);
  state.editor.value = exampleSource(schema);
  sourceChanged(state.editor.value);
  run();
});

/** A first query to look at: the first table, counted by a text column. */
function exampleSource(schema) {
  const table = schema.tables.find((t) => t.ref === 'servers') || schema.tables[0];
  if (!table) return {};
  const group = table.columns.find((c) => c.kind === 'text' && c.name === 'status') || table.columns.find((c) => c.kind === 'text');
  return group ? { table: table.ref, aggregation: 'count', groupBy: group.name } : { table: table.ref, aggregation: 'count' };
}

// ---------- form and JSON ----------

function setupTabs() {
  const tabs = [...document.querySelectorAll('[role=tab][data-tab]')];
  const select = (name, focus) => {
    if (name === 'form' && state.tab === 'json' && !jsonChanged()) return;
    state.tab = name;
    for (const tab of tabs) {
      const on = tab.dataset.tab === name;
      tab.setAttribute('aria-selected', String(on));
      tab.tabIndex = on ? 0 : -1;
      $(tab.getAttribute('aria-controls')).hidden = !on;
      if (on && focus) tab.focus();
    }
    if (name === 'json') $('json').value = JSON.stringify(state.editor.value, null, 2);
  };
  tabs.forEach((tab, i) => {
    tab.addEventListener('click', () => select(tab.dataset.tab, false));
    tab.addEventListener('keydown', (e) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[e.key];
      if (!step) return;
      e.preventDefault();
      select(tabs[(i + step + tabs.length) % tabs.length].dataset.tab, true);
    });
  });
}

function sourceChanged(source) {
  if (state.tab !== 'json') $('json').value = JSON.stringify(source, null, 2);
  updateSnippets(source);
  if (!state.typeTouched) $('save-type').value = source.timeBucket ? 'trend' : source.groupBy ? 'chart' : 'metric';
}

/** Reads the JSON tab into the form; false (and a message) when it is not a JSON object. */
function jsonChanged() {
  const form = $('source-form');
  const slot = form.querySelector('[data-error-for="json"]');
  let source;
  try {
    source = JSON.parse($('json').value);
    if (!source || typeof source !== 'object' || Array.isArray(source)) throw new Error('a data source is a JSON object: {"table": …}');
  } catch (e) {
    showError(form, 'json', `Not a data source yet: ${e.message}`);
    return false;
  }
  if (!slot.hidden) clearErrors(form);
  state.editor.value = source;
  sourceChanged(source);
  return true;
}

/** The data source to run: the JSON as written on the JSON tab, else the form's. */
function currentSource() {
  if (state.tab === 'json') {
    if (!jsonChanged()) return null;
    return JSON.parse($('json').value);
  }
  return state.editor.value;
}

// ---------- running ----------

let running = null;

async function run() {
  const form = $('source-form');
  clearErrors(form);
  const source = currentSource();
  if (!source) return;
  if (running) running.abort();
  const controller = new AbortController();
  running = controller;
  const body = { config: source };
  if ($('force-refresh').checked) body.force_refresh = true;
  const out = $('result-area');
  out.setAttribute('aria-busy', 'true');
  $('run').disabled = true;
  const sql = state.session.role === 'service_role' ? showSql(body, controller.signal) : null;
  const started = performance.now();
  try {
    const result = await queryWidget(body, controller.signal);
    const ms = performance.now() - started;
    const rows = Array.isArray(result.data) ? result.data : [];
    $('x-cache').textContent = result.xCache || '—';
    $('x-cache').className = `badge ${result.xCache === 'hit' ? 'hit' : 'miss'}`;
    $('timing').textContent = formatMs(ms);
    $('timing').dataset.ms = ms.toFixed(1);
    $('row-count').textContent = formatNumber(rows.length);
    $('cached-at').textContent = result.cached_at ? new Date(result.cached_at).toLocaleTimeString() : '—';
    $('figures').hidden = false;
    const chart = $('result-chart');
    forget(chart);
    chart.replaceChildren();
    chart.hidden = !chartKind(source);
    $('chart-note').hidden = !chart.hidden;
    drawChart(chart, source, rows, 'Result');
    replace($('result-table'), rows.length ? dataTable(rows, { id: 'result' }) : h('p', { class: 'muted small' }, 'No rows match.'));
    $('result-error').hidden = true;
  } catch (e) {
    if (controller.signal.aborted) return;
    $('figures').hidden = true;
    forget($('result-chart'));
    $('result-chart').replaceChildren();
    $('result-chart').hidden = true;
    $('chart-note').hidden = true;
    replace($('result-table'));
    $('result-error').textContent = `${e.message}${e.hint ? ` (${e.hint})` : ''}`;
    $('result-error').hidden = false;
    if (e.status === 400) showSourceError(e);
  } finally {
    if (running === controller) {
      running = null;
      out.removeAttribute('aria-busy');
      $('run').disabled = false;
    }
  }
  await sql;
}

/** A 400 next to the input it is about; on the JSON tab, under the JSON. */
function showSourceError(e) {
  const form = $('source-form');
  if (state.tab === 'json') showError(form, 'json', e.message);
  else showApiError(form, e);
}

// ---------- SQL ----------

function setupSql() {
  const service = state.session.role === 'service_role';
  $('sql').hidden = !service;
  $('sql-note').textContent = service
    ? 'The statement and its bind parameters, as the service would run them.'
    : `The SQL is shown to service_role only; you are signed in as ${state.session.role}.`;
}

/** One clause a line. Values are all bind parameters, so no literal is split. */
function readable(sql) {
  return String(sql).replace(/ (FROM|WHERE|GROUP BY|ORDER BY|LIMIT|OFFSET) /g, '\n$1 ');
}

async function showSql(body, signal) {
  try {
    const { data } = await call(`${WIDGET_DATA}/sql`, { method: 'POST', body, signal });
    const params = Array.isArray(data.params) && data.params.length ? `\n\n-- parameters\n${data.params.map((p, i) => `-- $${i + 1} = ${JSON.stringify(p)}`).join('\n')}` : '';
    $('sql').textContent = `${readable(data.sql)}${params}`;
  } catch (e) {
    if (!signal.aborted) $('sql').textContent = `-- ${e.message}`;
  }
}

// ---------- snippets ----------

function indent(text, pad) {
  return text.split('\n').join(`\n${pad}`);
}

function updateSnippets(source) {
  const origin = location.origin;
  const body = JSON.stringify({ config: source });
  const pretty = JSON.stringify(source, null, 2);
  $('snippet-curl').textContent = [
    `curl -s -X POST '${origin}${WIDGET_DATA}' \\`,
    `  -H "Authorization: Bearer $TOKEN" \\`,
    `  -H 'Content-Type: application/json' \\`,
    `  -d '${body.replace(/'/g, "'\\''")}'`,
  ].join('\n');
  $('snippet-supabase-js').textContent = [
    `import { createClient } from '@supabase/supabase-js';`,
    ``,
    `const supabase = createClient('${origin}', SUPABASE_ANON_KEY);`,
    ``,
    `const config = ${pretty};`,
    `const { data, error } = await supabase.functions.invoke('widget-data', { body: { config } });`,
  ].join('\n');
  $('snippet-typescript').textContent = [
    `// npx openapi-typescript ${origin}/openapi.json -o generated/schema.d.ts`,
    `import createClient from 'openapi-fetch';`,
    `import type { paths } from './generated/schema.js';`,
    ``,
    `const client = createClient<paths>({`,
    `  baseUrl: '${origin}',`,
    '  headers: { Authorization: `Bearer ${token}` },',
    `});`,
    ``,
    `const { data, error } = await client.POST('${WIDGET_DATA}', {`,
    `  body: { config: ${indent(pretty, '  ')} },`,
    `});`,
  ].join('\n');
}

function snippetButtons() {
  for (const pre of document.querySelectorAll('pre[data-snippet]')) {
    const head = pre.previousElementSibling;
    head.append(...copyButton(pre, head.querySelector('h3').textContent));
  }
}

// ---------- save as widget ----------

async function setupSave() {
  const form = $('save-form');
  const select = $('save-dashboard');
  replace($('save-type'), WIDGET_TYPES.map((t) => h('option', { value: t }, t)));
  $('save-type').addEventListener('change', () => {
    state.typeTouched = true;
  });
  form.addEventListener('submit', save);
  if (state.session.role === 'anon') {
    // anon owns no dashboards: nothing to list, nowhere to save.
    $('save-dashboard').disabled = true;
    $('save-as-widget').disabled = true;
    showError(form, 'form', 'Sign in as a user to save widgets: the anon key owns no dashboards.');
    return;
  }
  try {
    state.dashboards = await listDashboards();
  } catch (e) {
    state.dashboards = [];
    showError(form, 'form', `Could not list your dashboards: ${e.message}`);
  }
  replace(select, state.dashboards.map((d) => h('option', { value: d.id }, d.name || d.id)));
  const none = !state.dashboards.length;
  select.disabled = none;
  $('save-as-widget').disabled = none;
  if (none) showError(form, 'form', 'You have no dashboard to save to: create one on the Dashboard page.');
}

async function save(e) {
  e.preventDefault();
  const form = $('save-form');
  clearErrors(form);
  clearErrors($('source-form'));
  $('saved').hidden = true;
  const source = currentSource();
  if (!source) return;
  const title = $('save-title').value.trim();
  if (!title) {
    showError(form, 'title', 'Give the widget a title.');
    return;
  }
  const dashboardId = $('save-dashboard').value;
  const type = $('save-type').value;
  const button = $('save-as-widget');
  button.disabled = true;
  try {
    const widgets = await listWidgets(dashboardId);
    await insertWidget({
      dashboard_id: dashboardId,
      title,
      widget_type: type,
      data_source: source,
      position: { x: 0, y: nextFreeRow(widgets), ...defaultSize(type) },
    });
    const board = state.dashboards.find((d) => d.id === dashboardId);
    const link = $('saved-link');
    link.href = `/?dashboard=${encodeURIComponent(dashboardId)}`;
    link.textContent = `Open ${board ? board.name : 'the dashboard'}`;
    $('saved').hidden = false;
  } catch (err) {
    const name = inputFor(err.field);
    if (name === 'title' || name === 'widget_type' || name === 'form') {
      showError(form, name === 'widget_type' ? 'widget_type' : name, err.message);
    } else {
      showSourceError(err);
    }
  } finally {
    button.disabled = false;
  }
}
