// The data-source editor, shared by the dashboard's add/edit dialog and the
// playground: table, aggregation, column, groupBy, time bucket and filter
// rows, with pickers fed by the live schema, and the service's 400s shown
// next to the input their `details.field` names.

import { kinds, typedValue } from './api.js';
import { clearErrors, errorSlot, h, icon, replace, showError } from './dom.js';

export const AGGREGATIONS = [
  ['count', 'count'],
  ['count_distinct', 'count distinct'],
  ['sum', 'sum'],
  ['avg', 'average'],
  ['min', 'min'],
  ['max', 'max'],
];
export const GRANULARITIES = ['minute', 'hour', 'day', 'week', 'month', 'quarter', 'year'];
export const WIDGET_TYPES = ['metric', 'chart', 'stat', 'gauge', 'table', 'summary', 'trend'];
const OPS = [
  ['eq', '= equals'],
  ['neq', '≠ not equal'],
  ['gt', '> greater'],
  ['gte', '≥ at least'],
  ['lt', '< less'],
  ['lte', '≤ at most'],
  ['in', 'in list'],
  ['not_in', 'not in list'],
  ['like', 'like'],
  ['ilike', 'ilike (any case)'],
  ['between', 'between'],
  ['is_null', 'is null'],
  ['not_null', 'is not null'],
];
const NO_VALUE = new Set(['is_null', 'not_null']);
const LIST = new Set(['in', 'not_in', 'between']);
const OWN_KEYS = new Set(['table', 'aggregation', 'column', 'groupBy', 'timeBucket', 'filters']);

/** The columns an aggregation may use, as the service checks them. */
export function columnsFor(aggregation, columns) {
  switch (aggregation) {
    case 'sum':
    case 'avg':
      return columns.filter((c) => kinds.numeric(c.kind));
    case 'min':
    case 'max':
      return columns.filter((c) => kinds.numeric(c.kind) || kinds.temporal(c.kind) || c.kind === 'text');
    default:
      return columns;
  }
}

/**
 * The name of the input that a `details.field` path is about:
 * `data_source.column` / `config.column` → `column`,
 * `…groupBy[1]` → `groupBy`, `…timeBucket.column` → `timeBucket.column`,
 * `…filters[2].value[0]` → `filters[2].value`, `…aggregations[0].fn` →
 * `aggregation`; widget columns (`title`, `refresh_interval`) keep their
 * name; anything else → `form`.
 */
export function inputFor(path) {
  if (!path) return 'form';
  const p = path.replace(/^body\[\d+\]\./, '');
  if (/^(title|widget_type|refresh_interval)$/.test(p)) return p;
  const m = /^(?:data_source|config)(?:\.(.*))?$/.exec(p);
  if (!m || !m[1]) return 'form';
  const rest = m[1];
  if (/^(table|aggregation|column)$/.test(rest)) return rest;
  if (/^groupBy/.test(rest)) return 'groupBy';
  if (rest === 'timeBucket.granularity') return rest;
  if (/^timeBucket/.test(rest)) return 'timeBucket.column';
  if (/^aggregations/.test(rest)) return 'aggregation';
  const f = /^filters\[(\d+)\](?:\.(column|op|value))?/.exec(rest);
  if (f) return `filters[${f[1]}].${f[2] || 'column'}`;
  return 'form';
}

/**
 * Shows an ApiError on `form`: next to the input its field names when the
 * form has one, else in the form's `[data-error-for=form]`.
 */
export function showApiError(form, error) {
  clearErrors(form);
  const text = (message) => (error.hint ? `${message} (${error.hint})` : message);
  const name = inputFor(error.field);
  const input = name === 'form' ? null : form.elements.namedItem(name);
  if (input && !input.disabled) return showError(form, name, text(error.reason));
  return showError(form, 'form', text(error.message));
}

let uid = 0;

function field(form, id, name, labelText, control, hint) {
  control.id = id;
  control.name = name;
  return h(
    'div',
    { class: 'field' },
    h('label', { for: id }, labelText),
    control,
    hint ? h('p', { class: 'field-hint', id: `${id}-hint` }, hint) : null,
    errorSlot(form, name),
  );
}

function options(select, items, keep) {
  const values = items.map(([value]) => value);
  const chosen = keep.filter((v) => v && !values.includes(v));
  replace(
    select,
    items.map(([value, text]) => h('option', { value }, text)),
    // A value the schema does not know is kept, so the service says what is wrong.
    chosen.map((v) => h('option', { value: v }, `${v} (as given)`)),
  );
  for (const option of select.options) option.selected = keep.includes(option.value);
  if (!select.multiple && select.selectedIndex < 0 && select.options.length) select.selectedIndex = 0;
}

const selected = (select) => [...select.selectedOptions].map((o) => o.value).filter(Boolean);

/** The editor. `value` reads and writes the data source as JSON. */
export class SourceEditor {
  /**
   * Builds the inputs into `root`, which sits inside `form`.
   * `onChange(source)` runs after every edit.
   */
  constructor(form, root, { prefix, onChange = () => {} }) {
    this.form = form;
    this.prefix = prefix;
    this.onChange = onChange;
    this.schema = null;
    this.extras = {};
    this.extraFilters = [];
    const id = (name) => `${prefix}-${name.replace('.', '-')}`;
    this.table = h('select', { required: true });
    this.aggregation = h('select', {}, AGGREGATIONS.map(([v, t]) => h('option', { value: v }, t)));
    this.column = h('select', {});
    this.groupBy = h('select', { multiple: true, size: '4', 'aria-describedby': `${id('groupBy')}-hint` });
    this.bucketColumn = h('select', {});
    this.granularity = h('select', {}, GRANULARITIES.map((g) => h('option', { value: g, selected: g === 'day' }, g)));
    this.rows = h('div', { class: 'filter-rows' });
    this.note = h('p', { class: 'field-hint', hidden: true });
    replace(
      root,
      h(
        'div',
        { class: 'fields' },
        field(form, id('table'), 'table', 'Table', this.table),
        field(form, id('aggregation'), 'aggregation', 'Aggregation', this.aggregation),
        field(form, id('column'), 'column', 'Column', this.column),
        field(form, id('groupBy'), 'groupBy', 'Group by', this.groupBy, 'A bar chart per group. Ctrl/⌘ + click picks several.'),
        field(form, id('timeBucket.column'), 'timeBucket.column', 'Time bucket column', this.bucketColumn),
        field(form, id('timeBucket.granularity'), 'timeBucket.granularity', 'Time bucket size', this.granularity),
        h(
          'fieldset',
          { class: 'wide' },
          h('legend', {}, 'Filters'),
          this.rows,
          h('button', { type: 'button', class: 'btn-small', onclick: () => this.addFilter({}, true) }, icon('plus'), 'Add filter'),
          this.note,
        ),
      ),
    );
    root.addEventListener('change', (e) => {
      if (e.target === this.table || e.target === this.aggregation) this.refreshColumns();
      if (e.target === this.bucketColumn) this.granularity.disabled = !this.bucketColumn.value;
      if (e.target.name && e.target.name.endsWith('.op')) this.syncValueInput(e.target.closest('.filter-row'));
      this.onChange(this.value);
    });
    root.addEventListener('input', (e) => {
      if (e.target.tagName === 'INPUT') this.onChange(this.value);
    });
    this.refreshColumns();
  }

  setSchema(schema) {
    this.schema = schema;
    const current = this.table.value;
    options(
      this.table,
      [['', 'Choose a table…'], ...schema.tables.map((t) => [t.ref, t.ref])],
      [current || (schema.tables[0] ? schema.tables[0].ref : '')],
    );
    this.table.options[0].disabled = true;
    this.refreshColumns();
  }

  columns() {
    const table = this.schema && this.schema.table(this.table.value);
    return table ? table.columns : [];
  }

  columnKind(name) {
    const column = this.columns().find((c) => c.name === name);
    return column ? column.kind : null;
  }

  /** Refills the column pickers for the table and aggregation chosen. */
  refreshColumns() {
    const columns = this.columns();
    const names = (list) => list.map((c) => [c.name, `${c.name} (${c.kind})`]);
    const agg = this.aggregation.value;
    options(this.column, [['', agg === 'count' ? 'All rows' : 'Choose a column…'], ...names(columnsFor(agg, columns))], [this.column.value]);
    options(this.groupBy, names(columns.filter((c) => kinds.filterable(c.kind))), selected(this.groupBy));
    options(this.bucketColumn, [['', 'No time bucket'], ...names(columns.filter((c) => kinds.temporal(c.kind)))], [this.bucketColumn.value]);
    this.granularity.disabled = !this.bucketColumn.value;
    for (const row of this.rows.children) {
      const select = row.querySelector('select[name$=".column"]');
      options(select, [['', 'Column…'], ...names(columns.filter((c) => kinds.filterable(c.kind)))], [select.value]);
    }
  }

  /** Adds a filter row, filled from `filter` ({column, op, value}). */
  addFilter(filter, focus = false) {
    uid += 1;
    const base = `${this.prefix}-f${uid}`;
    const column = h('select', { id: `${base}-column` });
    const op = h('select', { id: `${base}-op` }, OPS.map(([v, t]) => h('option', { value: v }, t)));
    const value = h('input', { id: `${base}-value`, type: 'text', autocomplete: 'off' });
    const row = h('div', { class: 'filter-row' });
    const remove = h(
      'button',
      {
        type: 'button',
        class: 'btn-icon btn-ghost',
        onclick: () => {
          const next = row.nextElementSibling || row.previousElementSibling;
          row.remove();
          this.renumber();
          (next ? next.querySelector('select') : this.rows.nextElementSibling).focus();
          this.onChange(this.value);
        },
      },
      icon('close'),
      h('span', { class: 'sr-only' }, 'Remove this filter'),
    );
    replace(
      row,
      h('div', { class: 'field' }, h('label', { for: column.id }, 'Column'), column),
      h('div', { class: 'field' }, h('label', { for: op.id }, 'Operator'), op),
      h('div', { class: 'field' }, h('label', { for: value.id }, 'Value'), value),
      remove,
    );
    this.rows.append(row);
    const names = this.columns().filter((c) => kinds.filterable(c.kind)).map((c) => [c.name, `${c.name} (${c.kind})`]);
    options(column, [['', 'Column…'], ...names], [filter.column || '']);
    const opValue = typeof filter.op === 'string' ? filter.op : 'eq';
    if (!OPS.some(([v]) => v === opValue)) op.append(h('option', { value: opValue }, opValue));
    op.value = opValue;
    const v = filter.value;
    value.value = v === undefined || v === null ? '' : Array.isArray(v) ? v.join(', ') : typeof v === 'object' ? JSON.stringify(v) : String(v);
    this.renumber();
    this.syncValueInput(row);
    if (focus) column.focus();
    return row;
  }

  /** Names filter rows `filters[i].column|op|value` in order, with their error slots. */
  renumber() {
    [...this.rows.children].forEach((row, i) => {
      const [column, op] = row.querySelectorAll('select');
      const value = row.querySelector('input');
      for (const slot of row.querySelectorAll('[data-error-for]')) slot.remove();
      column.name = `filters[${i}].column`;
      op.name = `filters[${i}].op`;
      value.name = `filters[${i}].value`;
      row.querySelector('button .sr-only').textContent = `Remove filter ${i + 1}`;
      row.append(errorSlot(this.form, column.name), errorSlot(this.form, op.name), errorSlot(this.form, value.name));
    });
  }

  syncValueInput(row) {
    const op = row.querySelector('select[name$=".op"]').value;
    const value = row.querySelector('input');
    value.disabled = NO_VALUE.has(op);
    value.placeholder = op === 'between' ? 'low, high' : LIST.has(op) ? 'a, b, c' : '';
  }

  /** The data source the inputs describe. */
  get value() {
    const source = { table: this.table.value };
    if (!this.extras.aggregations) {
      source.aggregation = this.aggregation.value;
      if (this.column.value) source.column = this.column.value;
    }
    const groups = selected(this.groupBy);
    if (groups.length === 1) source.groupBy = groups[0];
    else if (groups.length > 1) source.groupBy = groups;
    if (this.bucketColumn.value) source.timeBucket = { column: this.bucketColumn.value, granularity: this.granularity.value };
    const filters = [...this.rows.children].map((row) => this.filterOf(row));
    filters.push(...this.extraFilters);
    if (filters.length) source.filters = filters;
    return { ...source, ...this.extras };
  }

  filterOf(row) {
    const column = row.querySelector('select[name$=".column"]').value;
    const op = row.querySelector('select[name$=".op"]').value;
    const text = row.querySelector('input').value;
    const kind = this.columnKind(column);
    const filter = { column, op };
    if (NO_VALUE.has(op)) return filter;
    if (LIST.has(op)) {
      filter.value = text
        .split(',')
        .map((t) => t.trim())
        .filter((t) => t !== '')
        .map((t) => typedValue(t, kind));
    } else {
      filter.value = typedValue(text, kind);
    }
    return filter;
  }

  /** Fills the inputs from a data source; what they cannot show is kept as is. */
  set value(source) {
    const s = source && typeof source === 'object' ? source : {};
    this.extras = Object.fromEntries(Object.entries(s).filter(([k]) => !OWN_KEYS.has(k)));
    this.extraFilters = [];
    options(this.table, [...this.table.options].map((o) => [o.value, o.textContent]).filter(([v]) => !v || this.schema?.table(v)), [s.table || '']);
    if (this.table.options[0] && !this.table.options[0].value) this.table.options[0].disabled = true;
    this.aggregation.value = AGGREGATIONS.some(([v]) => v === s.aggregation) ? s.aggregation : 'count';
    this.aggregation.disabled = Boolean(this.extras.aggregations);
    this.column.disabled = Boolean(this.extras.aggregations);
    this.refreshColumns();
    options(this.column, [...this.column.options].map((o) => [o.value, o.textContent]).filter(([v]) => !v || this.columnKind(v)), [s.column || '']);
    const groups = Array.isArray(s.groupBy) ? s.groupBy : s.groupBy ? [s.groupBy] : [];
    options(this.groupBy, [...this.groupBy.options].map((o) => [o.value, o.textContent]).filter(([v]) => this.columnKind(v)), groups);
    const tb = s.timeBucket && typeof s.timeBucket === 'object' ? s.timeBucket : null;
    options(this.bucketColumn, [...this.bucketColumn.options].map((o) => [o.value, o.textContent]).filter(([v]) => !v || this.columnKind(v)), [tb ? tb.column : '']);
    this.granularity.value = tb && GRANULARITIES.includes(tb.granularity) ? tb.granularity : 'day';
    this.granularity.disabled = !tb;
    this.rows.replaceChildren();
    for (const filter of filterList(s.filters)) {
      if (filter && typeof filter.column === 'string') this.addFilter(filter);
      else this.extraFilters.push(filter);
    }
    const kept = [...Object.keys(this.extras), ...(this.extraFilters.length ? [`${this.extraFilters.length} grouped filter(s)`] : [])];
    this.note.textContent = kept.length ? `Kept as they are (edit them as JSON in the playground): ${kept.join(', ')}.` : '';
    this.note.hidden = !kept.length;
  }
}

/** A data source's `filters` as a list: the `{column: value}` shorthand expanded. */
function filterList(filters) {
  if (Array.isArray(filters)) return filters;
  if (!filters || typeof filters !== 'object') return [];
  return Object.entries(filters).map(([column, value]) => {
    if (Array.isArray(value)) return { column, op: 'in', value };
    if (value === null) return { column, op: 'is_null' };
    if (typeof value === 'object' && value.op) return { column, ...value };
    return { column, op: 'eq', value };
  });
}
