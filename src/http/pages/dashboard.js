// The dashboard page (/): the caller's dashboards, one shown as a grid of
// widgets laid out by their position, each loading its data on its own;
// the filter bar (global defaults and the user's preferences); the
// add/edit dialog and delete.

import { call, defaultSize, get, insertWidget, kinds, listDashboards, listWidgets, loadSchema, nextFreeRow, queryWidget, typedValue } from './api.js';
import { forget } from './charts.js';
import { ago, clearErrors, errorSlot, h, icon, openDialog, replace, showError } from './dom.js';
import { renderResult } from './results.js';
import { boot } from './session.js';
import { SourceEditor, WIDGET_TYPES, showApiError } from './source-form.js';

const DRAWN_MARK = 'widget-data:widgets-drawn';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const state = {
  session: null,
  dashboards: [],
  /** The shown dashboard's id, and its row once the list is known. */
  dashboardId: null,
  dashboard: null,
  /** The list of dashboards, when it has answered (null if it failed). */
  listed: null,
  /** id → {row, el, body, controller} */
  widgets: new Map(),
  prefs: [],
  defaults: [],
  marked: false,
};

const $ = (id) => document.getElementById(id);

boot(async (session) => {
  state.session = session;
  setInterval(tick, 1000);
  $('dashboard-picker').addEventListener('change', (e) => showDashboard(e.target.value));
  $('add-widget').addEventListener('click', () => openWidgetDialog(null));
  $('filters').addEventListener('submit', saveFilter);
  if (session.role === 'anon') {
    // anon owns no dashboards and may not list them: ask for nothing.
    fillPicker();
    $('filters').hidden = true;
    replace(
      $('grid'),
      h(
        'div',
        { class: 'card empty-state' },
        h('h2', {}, 'Dashboards belong to signed-in users'),
        h('p', {}, 'You are signed in with the anon key. Sign in as a user to see and build dashboards, or try queries in the playground.'),
        h('button', { type: 'button', class: 'btn-primary', onclick: () => $('sign-out').click() }, 'Sign out and choose another token'),
      ),
    );
    mark();
    return;
  }
  const wanted = new URLSearchParams(location.search).get('dashboard');
  const listed = listDashboards().then((list) => (Array.isArray(list) ? list : []));
  // Known once the list answers (null when it failed); a dashboard is
  // drawn only when it is on the list.
  state.listed = listed.catch(() => null);
  // A dashboard named in the URL starts loading at once, beside the list.
  const early = wanted && UUID.test(wanted) ? showDashboard(wanted) : null;
  let dashboards;
  try {
    dashboards = await listed;
  } catch (e) {
    pageError(`Could not list your dashboards: ${e.message}`);
    mark();
    return;
  }
  state.dashboards = dashboards;
  fillPicker(state.dashboardId);
  if (!dashboards.length) {
    noDashboards();
    mark();
    return;
  }
  const found = wanted && dashboards.find((d) => d.id === wanted);
  if (found) {
    showInfo();
    await early;
    return;
  }
  if (wanted) notice(`No dashboard ${wanted} is visible to you; showing ${dashboards[0].name}.`);
  await showDashboard(dashboards[0].id);
});

function pageError(message) {
  replace($('grid'), h('p', { class: 'notice error', role: 'alert' }, message));
}

function notice(message) {
  const el = $('dashboard-notice');
  el.textContent = message;
  el.hidden = !message;
}

function fillPicker(selectedId) {
  replace(
    $('dashboard-picker'),
    state.dashboards.map((d) => h('option', { value: d.id, selected: d.id === selectedId }, d.name || d.id)),
  );
  $('dashboard-picker').disabled = !state.dashboards.length;
  $('add-widget').disabled = !state.dashboards.length;
}

/** Marks the first shown dashboard as drawn (every widget final), once. */
function mark() {
  if (state.marked) return;
  state.marked = true;
  performance.mark(DRAWN_MARK);
}

function noDashboards() {
  state.dashboardId = null;
  const form = h('form', { id: 'new-dashboard', 'aria-label': 'Create a dashboard' });
  const name = h('input', { id: 'new-dashboard-name', name: 'name', required: true, autocomplete: 'off' });
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearErrors(form);
    if (!name.value.trim()) {
      showError(form, 'name', 'Give the dashboard a name.');
      return;
    }
    try {
      const rows = await get('/rest/v1/dashboards', { method: 'POST', body: [{ name: name.value.trim() }], prefer: 'return=representation' });
      const board = rows[0];
      state.dashboards.push(board);
      fillPicker(board.id);
      await showDashboard(board.id);
    } catch (err) {
      showApiError(form, err);
    }
  });
  replace(form, errorSlot(form, 'form'), h('div', { class: 'field' }, h('label', { for: name.id }, 'Dashboard name'), name, errorSlot(form, 'name')), h('button', { type: 'submit', class: 'btn-primary' }, 'Create dashboard'));
  $('dashboard-title').textContent = 'No dashboards yet';
  $('filters').hidden = true;
  replace($('grid'), h('div', { class: 'card empty-state' }, h('h2', {}, 'Start a dashboard'), h('p', {}, 'Dashboards hold widgets: numbers, bar charts and trends from your tables.'), form));
}

/** Shows dashboard `id`: its widgets (all loading at once) and filters. */
async function showDashboard(id) {
  for (const w of state.widgets.values()) dropWidget(w);
  state.widgets.clear();
  state.dashboardId = id;
  state.dashboard = state.dashboards.find((d) => d.id === id) || null;
  fillPicker(id);
  history.replaceState(null, '', `/?dashboard=${encodeURIComponent(id)}`);
  showInfo();
  $('filters').hidden = false;
  replace($('grid'));
  let rows;
  try {
    rows = await listWidgets(id);
  } catch (e) {
    if (state.dashboardId !== id) return;
    pageError(`Could not load the widgets: ${e.message}`);
    if ((await state.listed) && state.dashboardId === id) mark();
    await loadFilters(id);
    return;
  }
  if (state.dashboardId !== id) return;
  rows.sort((a, b) => pos(a).y - pos(b).y || pos(a).x - pos(b).x);
  const loads = rows.map((row) => addWidget(row).load(false));
  emptyState();
  // The filter bar after the widgets' queries: they go first.
  const filters = loadFilters(id);
  // Drawn: every widget final, and the dashboard is one of the caller's.
  Promise.all([Promise.allSettled(loads), state.listed]).then(() => {
    if (state.dashboardId === id && state.dashboards.some((d) => d.id === id)) mark();
  });
  await filters;
}

/** The shown dashboard's name and description, once the list is known. */
function showInfo() {
  const board = state.dashboards.find((d) => d.id === state.dashboardId);
  state.dashboard = board || null;
  $('dashboard-title').textContent = board ? board.name || 'Dashboard' : 'Dashboard';
  $('dashboard-description').textContent = board ? board.description || '' : '';
  document.title = `${board ? board.name || 'Dashboard' : 'Dashboard'} · widget-data`;
}

function emptyState() {
  const empty = $('grid').querySelector('.empty-state');
  if (state.widgets.size && empty) empty.remove();
  if (!state.widgets.size && !empty) {
    $('grid').append(h('div', { class: 'card empty-state wide-empty' }, h('h2', {}, 'No widgets yet'), h('p', {}, 'Add a widget: pick a table, what to count or average, and how to group it.')));
  }
}

function pos(row) {
  const p = row.position && typeof row.position === 'object' ? row.position : {};
  const n = (v, d) => (Number.isFinite(Number(v)) ? Math.floor(Number(v)) : d);
  const x = Math.min(11, Math.max(0, n(p.x, 0)));
  const w = Math.min(12 - x, Math.max(1, n(p.w, 4)));
  return { x, y: Math.max(0, n(p.y, 0)), w, h: Math.max(1, n(p.h, 3)) };
}

// ---------- widgets ----------

function actionButton(action, label, title) {
  return h('button', { type: 'button', class: 'btn-icon btn-ghost', dataset: { action }, title: label }, icon(action), h('span', { class: 'sr-only' }, `${label} ${title}`));
}

/** Creates a widget's element in the grid; `.load(force)` fetches its data. */
function addWidget(row) {
  const titleId = `widget-title-${row.id}`;
  const heading = h('h2', { id: titleId });
  const stale = h('span', { class: 'badge stale', dataset: { badge: 'stale' }, hidden: true }, 'stale');
  const body = h('div', { class: 'widget-body' }, h('div', { class: 'skeleton', 'aria-hidden': 'true' }));
  const updated = h('span', { dataset: { updated: '' } });
  const xCache = h('span', { class: 'badge', hidden: true });
  const el = h(
    'article',
    { class: 'widget', 'aria-labelledby': titleId, dataset: { widgetId: row.id, state: 'loading' } },
    h('header', { class: 'widget-head' }, heading, stale, h('div', { class: 'widget-actions' })),
    body,
    h('footer', { class: 'widget-foot' }, updated, xCache),
  );
  const w = { row, el, body, heading, stale, updated, xCache, controller: null };
  w.setRow = (next) => {
    w.row = next;
    heading.textContent = next.title || 'Untitled widget';
    el.dataset.widgetType = next.widget_type || '';
    const p = pos(next);
    el.style.setProperty('--col', String(p.x + 1));
    el.style.setProperty('--w', String(p.w));
    el.style.setProperty('--row-start', String(p.y + 1));
    el.style.setProperty('--h', String(p.h));
    const title = next.title || 'widget';
    replace(el.querySelector('.widget-actions'), actionButton('refresh', 'Refresh', title), actionButton('edit', 'Edit', title), actionButton('delete', 'Delete', title));
  };
  w.setRow(row);
  el.addEventListener('click', (e) => {
    const button = e.target.closest('button[data-action]');
    if (!button) return;
    if (button.dataset.action === 'refresh') w.load(true);
    if (button.dataset.action === 'edit') openWidgetDialog(w);
    if (button.dataset.action === 'delete') confirmDelete(w);
  });
  w.load = (force) => loadWidget(w, force);
  el.addEventListener('chart-drawn', () => markScrollable(w));
  state.widgets.set(row.id, w);
  $('grid').append(el);
  return w;
}

function forgetChart(w) {
  const chart = w.body.querySelector('.chart');
  if (chart) forget(chart);
}

function dropWidget(w) {
  if (w.controller) w.controller.abort();
  forgetChart(w);
  w.el.remove();
}

/** Fetches a widget's data and draws it; never throws. */
async function loadWidget(w, force) {
  if (w.controller) w.controller.abort();
  const controller = new AbortController();
  w.controller = controller;
  w.el.dataset.state = 'loading';
  w.el.setAttribute('aria-busy', 'true');
  const request = { widget_id: w.row.id };
  if (force) request.force_refresh = true;
  try {
    const result = await queryWidget(request, controller.signal);
    if (controller.signal.aborted) return;
    const rows = Array.isArray(result.data) ? result.data : [];
    forgetChart(w);
    renderResult(w.body, w.row.data_source || {}, rows, w.row.title || 'Widget');
    w.updated.dataset.cachedAt = result.cached_at || '';
    w.stale.hidden = !result.stale;
    w.xCache.hidden = !result.xCache;
    w.xCache.textContent = result.xCache ? `cache ${result.xCache}` : '';
    w.xCache.className = `badge ${result.xCache === 'hit' ? 'hit' : 'miss'}`;
    w.el.dataset.state = result.stale ? 'stale' : 'ready';
    requestAnimationFrame(() => markScrollable(w));
  } catch (e) {
    if (controller.signal.aborted || (e && e.name === 'AbortError')) return;
    forgetChart(w);
    replace(w.body, h('p', { class: 'widget-error', role: 'alert' }, e.message, h('span', { class: 'code' }, `${e.status || ''} ${e.code || ''}`.trim())));
    w.stale.hidden = true;
    w.xCache.hidden = true;
    w.el.dataset.state = 'error';
  } finally {
    if (w.controller === controller) {
      w.controller = null;
      w.el.removeAttribute('aria-busy');
      tickOne(w.updated, Date.now());
    }
  }
}

/**
 * A widget body whose content overflows scrolls: then it takes focus (and
 * a name) so a keyboard can scroll it too.
 */
function markScrollable(w) {
  const b = w.body;
  if (b.scrollHeight > b.clientHeight + 1 || b.scrollWidth > b.clientWidth + 1) {
    b.tabIndex = 0;
    b.setAttribute('role', 'region');
    b.setAttribute('aria-label', `${w.row.title || 'Widget'}: data`);
  } else {
    b.removeAttribute('tabindex');
    b.removeAttribute('role');
    b.removeAttribute('aria-label');
  }
}

function tickOne(el, now) {
  const at = el.dataset.cachedAt;
  el.textContent = at ? `updated ${ago(at, now)}` : '';
  if (at) el.title = new Date(at).toLocaleString();
}

function tick() {
  const now = Date.now();
  for (const el of document.querySelectorAll('[data-updated]')) tickOne(el, now);
}

function requeryAll() {
  return Promise.allSettled([...state.widgets.values()].map((w) => w.load(false)));
}

// ---------- delete ----------

function confirmDelete(w) {
  const dialog = $('delete-dialog');
  const form = h('form', { id: 'delete-form', class: 'dialog-body', novalidate: true });
  const cancel = h('button', { type: 'button', dataset: { action: 'cancel' }, onclick: () => dialog.close() }, 'Cancel');
  const confirm = h('button', { type: 'submit', class: 'btn-danger', dataset: { action: 'confirm-delete' } }, 'Delete widget');
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearErrors(form);
    confirm.disabled = true;
    try {
      await call(`/rest/v1/dashboard_widgets?id=eq.${encodeURIComponent(w.row.id)}`, { method: 'DELETE' });
      state.widgets.delete(w.row.id);
      dropWidget(w);
      emptyState();
      dialog.close();
      $('add-widget').focus();
    } catch (err) {
      showApiError(form, err);
    } finally {
      confirm.disabled = false;
    }
  });
  replace(
    form,
    h('h2', { id: 'delete-dialog-title' }, 'Delete this widget?'),
    h('p', {}, `“${w.row.title || 'Untitled widget'}” and its cached data will be removed. This cannot be undone.`),
    errorSlot(form, 'form'),
    h('div', { class: 'form-actions' }, cancel, confirm),
  );
  replace(dialog, form);
  openDialog(dialog, cancel);
}

// ---------- add / edit ----------

async function openWidgetDialog(w) {
  const dialog = $('widget-dialog');
  const form = h('form', { id: 'widget-form', class: 'dialog-body', novalidate: true });
  const row = w ? w.row : null;
  const title = h('input', { id: 'widget-title', name: 'title', required: true, autocomplete: 'off', value: row ? row.title || '' : '' });
  const type = h('select', { id: 'widget-type', name: 'widget_type' }, WIDGET_TYPES.map((t) => h('option', { value: t, selected: row ? row.widget_type === t : t === 'metric' }, t)));
  const refresh = h('input', { id: 'widget-refresh', name: 'refresh_interval', type: 'number', min: '1', step: '1', inputmode: 'numeric', value: row && row.refresh_interval ? row.refresh_interval : '', 'aria-describedby': 'widget-refresh-hint' });
  const sourceRoot = h('div', {});
  const save = h('button', { type: 'submit', class: 'btn-primary' }, row ? 'Save changes' : 'Add widget');
  let typeTouched = Boolean(row);
  type.addEventListener('change', () => {
    typeTouched = true;
  });
  replace(
    form,
    h('h2', { id: 'widget-dialog-title' }, row ? 'Edit widget' : 'Add a widget'),
    errorSlot(form, 'form'),
    h(
      'div',
      { class: 'fields' },
      h('div', { class: 'field wide' }, h('label', { for: title.id }, 'Title'), title, errorSlot(form, 'title')),
      h('div', { class: 'field' }, h('label', { for: type.id }, 'Widget type'), type, errorSlot(form, 'widget_type')),
      h('div', { class: 'field' }, h('label', { for: refresh.id }, 'Refresh every (seconds)'), refresh, h('p', { class: 'field-hint', id: 'widget-refresh-hint' }, 'Empty: the default for the type.'), errorSlot(form, 'refresh_interval')),
    ),
    h('h3', { class: 'section-title' }, 'Data'),
    sourceRoot,
    h('div', { class: 'form-actions' }, h('button', { type: 'button', dataset: { action: 'cancel' }, onclick: () => dialog.close() }, 'Cancel'), save),
  );
  replace(dialog, form);
  dialog.setAttribute('aria-labelledby', 'widget-dialog-title');
  const editor = new SourceEditor(form, sourceRoot, {
    prefix: 'widget',
    onChange: (source) => {
      if (typeTouched) return;
      type.value = source.timeBucket ? 'trend' : source.groupBy ? 'chart' : 'metric';
    },
  });
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearErrors(form);
    if (!title.value.trim()) {
      showError(form, 'title', 'Give the widget a title.');
      return;
    }
    const interval = refresh.value.trim() === '' ? null : Number(refresh.value);
    const fields = { title: title.value.trim(), widget_type: type.value, data_source: editor.value, refresh_interval: interval };
    save.disabled = true;
    try {
      if (row) {
        const body = await get(`/rest/v1/dashboard_widgets?id=eq.${encodeURIComponent(row.id)}`, { method: 'PATCH', body: fields, prefer: 'return=representation' });
        const saved = Array.isArray(body) && body[0] ? body[0] : { ...row, ...fields };
        dialog.close();
        w.setRow(saved);
        w.load(false);
      } else {
        const existing = [...state.widgets.values()].map((x) => x.row);
        if (fields.refresh_interval === null) delete fields.refresh_interval;
        const saved = await insertWidget({
          dashboard_id: state.dashboardId,
          ...fields,
          position: { x: 0, y: nextFreeRow(existing), ...defaultSize(fields.widget_type) },
        });
        dialog.close();
        const added = addWidget(saved);
        emptyState();
        fillFilterKeys();
        added.load(false);
        added.el.scrollIntoView({ block: 'nearest', behavior: 'smooth' });
      }
    } catch (err) {
      showApiError(form, err);
    } finally {
      save.disabled = false;
    }
  });
  openDialog(dialog, title);
  try {
    editor.setSchema(await loadSchema());
  } catch (e) {
    showError(form, 'form', `Could not read the tables you may query: ${e.message}`);
  }
  editor.value = row ? row.data_source || {} : { table: editor.table.value, aggregation: 'count' };
}

// ---------- filters ----------

function describeValue(value) {
  if (value === null) return 'is null';
  if (Array.isArray(value)) return `in (${value.join(', ')})`;
  if (typeof value === 'object') return `${value.op} ${value.value === undefined ? '' : JSON.stringify(value.value)}`.trim();
  return `= ${value}`;
}

/** Loads the global defaults and the user's preferences for a dashboard. */
async function loadFilters(id) {
  const sub = state.session.claims && state.session.claims.sub;
  const prefsUrl = `/rest/v1/user_filter_preferences?select=id,filter_key,value&dashboard_id=eq.${encodeURIComponent(id)}${sub ? `&user_id=eq.${encodeURIComponent(sub)}` : ''}&order=created_at.asc`;
  const [prefs, defaults] = await Promise.all([
    sub ? get(prefsUrl).catch(() => []) : Promise.resolve([]),
    get('/rest/v1/global_filter_defaults?select=id,dashboard_id,filter_key,value&order=created_at.asc').catch(() => []),
  ]);
  if (state.dashboardId !== id) return;
  state.prefs = Array.isArray(prefs) ? prefs : [];
  state.defaults = (Array.isArray(defaults) ? defaults : []).filter((d) => d.dashboard_id === null || d.dashboard_id === id);
  renderFilters();
  fillFilterKeys();
}

function renderFilters() {
  const form = $('filters');
  const list = form.querySelector('.filter-list');
  const byKey = new Map();
  for (const d of state.defaults) byKey.set(d.filter_key, { key: d.filter_key, value: d.value, source: 'default', row: d });
  for (const p of state.prefs) byKey.set(p.filter_key, { key: p.filter_key, value: p.value, source: 'preference', row: p });
  const canEditDefaults = state.session.role === 'service_role';
  replace(
    list,
    byKey.size
      ? [...byKey.values()].map((f) =>
          h(
            'li',
            { class: `chip ${f.source}`, dataset: { filterKey: f.key, filterSource: f.source } },
            h('span', {}, h('strong', {}, f.key), ` ${describeValue(f.value)}`),
            h('span', { class: 'chip-source' }, f.source === 'default' ? 'default' : 'yours'),
            f.source === 'preference' || canEditDefaults
              ? h('button', { type: 'button', dataset: { action: 'remove-filter' }, title: `Remove filter ${f.key}`, onclick: () => removeFilter(f) }, icon('close'), h('span', { class: 'sr-only' }, `Remove filter ${f.key}`))
              : null,
          ),
        )
      : h('li', { class: 'empty' }, 'No filters: every widget shows all rows.'),
  );
  const sub = state.session.claims && state.session.claims.sub;
  form.querySelector('.filter-edit').hidden = !sub;
}

/** The filter keys offered: filterable columns of the dashboard's tables. */
async function fillFilterKeys() {
  const select = $('filters').elements.namedItem('filter_key');
  let schema;
  try {
    schema = await loadSchema();
  } catch {
    return;
  }
  const tables = new Set([...state.widgets.values()].map((w) => (w.row.data_source || {}).table).filter(Boolean));
  const names = new Map();
  for (const ref of tables) {
    const table = schema.table(ref);
    if (!table) continue;
    for (const c of table.columns) if (kinds.filterable(c.kind) && !names.has(c.name)) names.set(c.name, c.kind);
  }
  const current = select.value;
  replace(select, [...names].map(([name, kind]) => h('option', { value: name, dataset: { kind } }, name)));
  if (names.has(current)) select.value = current;
  select.disabled = !names.size;
}

async function saveFilter(e) {
  e.preventDefault();
  const form = $('filters');
  clearErrors(form);
  const key = form.elements.namedItem('filter_key').value;
  const input = form.elements.namedItem('filter_value');
  const option = form.elements.namedItem('filter_key').selectedOptions[0];
  const kind = option ? option.dataset.kind : null;
  if (!key) return showError(form, 'filter_key', 'Choose a column to filter on.');
  if (input.value.trim() === '') return showError(form, 'filter_value', 'Enter a value.');
  const value = typedValue(input.value, kind);
  if (kinds.numeric(kind) && typeof value !== 'number') return showError(form, 'filter_value', `${key} holds numbers: enter a number.`);
  const existing = state.prefs.find((p) => p.filter_key === key);
  const button = form.querySelector('button[type=submit]');
  button.disabled = true;
  try {
    if (existing) {
      await call(`/rest/v1/user_filter_preferences?id=eq.${encodeURIComponent(existing.id)}`, { method: 'PATCH', body: { value } });
    } else {
      await call('/rest/v1/user_filter_preferences', { method: 'POST', body: [{ dashboard_id: state.dashboardId, filter_key: key, value }], prefer: 'return=representation' });
    }
    input.value = '';
    await loadFilters(state.dashboardId);
    await requeryAll();
  } catch (err) {
    showError(form, err.field === 'value' ? 'filter_value' : 'form', err.message);
  } finally {
    button.disabled = false;
  }
}

async function removeFilter(f) {
  const form = $('filters');
  clearErrors(form);
  const table = f.source === 'preference' ? 'user_filter_preferences' : 'global_filter_defaults';
  try {
    await call(`/rest/v1/${table}?id=eq.${encodeURIComponent(f.row.id)}`, { method: 'DELETE' });
    await loadFilters(state.dashboardId);
    form.elements.namedItem('filter_value').focus();
    await requeryAll();
  } catch (err) {
    showError(form, 'form', err.message);
  }
}
