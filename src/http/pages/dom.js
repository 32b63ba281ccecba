// Building and formatting the DOM, shared by every page. Text always goes
// in through textContent or attributes, never as HTML.

/**
 * `h('button', {class: 'btn', dataset: {action: 'x'}, onclick}, 'Text')`:
 * an element with attributes, listeners (`on*` keys, attached with
 * addEventListener) and children (nodes or strings; null is skipped).
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

const SVG_NS = 'http://www.w3.org/2000/svg';

/** An SVG element, as `h` makes HTML ones. */
export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function setAttrs(el, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'dataset') {
      for (const [k, v] of Object.entries(value)) if (v !== null && v !== undefined) el.dataset[k] = String(v);
    } else if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (key === 'text') {
      el.textContent = String(value);
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces an element's children. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// ---------- icons (16 px, stroke) ----------

const ICONS = {
  refresh: ['M13.5 8a5.5 5.5 0 1 1-1.6-3.9', 'M13.5 2.5v3h-3'],
  edit: ['M10.5 2.5l3 3L6 13H3v-3z'],
  delete: ['M3 4.5h10', 'M6.5 4.5V3h3v1.5', 'M4.5 4.5l.7 8.5h5.6l.7-8.5'],
  close: ['M4 4l8 8', 'M12 4l-8 8'],
  plus: ['M8 3v10', 'M3 8h10'],
  copy: ['M5.5 5.5h7v7h-7z', 'M10.5 5.5v-2h-7v7h2'],
};

/** An icon for a button; hidden from assistive technology. */
export function icon(name) {
  return svg(
    'svg',
    { viewBox: '0 0 16 16', fill: 'none', stroke: 'currentColor', 'stroke-width': '1.6', 'stroke-linecap': 'round', 'stroke-linejoin': 'round', 'aria-hidden': 'true', focusable: 'false' },
    ICONS[name].map((d) => svg('path', { d })),
  );
}

// ---------- formatting ----------

const integer = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
const decimal = new Intl.NumberFormat('en-US', { maximumFractionDigits: 2 });

/** A number for reading: grouped, at most two decimals. */
export function formatNumber(value) {
  if (typeof value !== 'number' || !Number.isFinite(value)) return value === null || value === undefined ? '—' : String(value);
  return Number.isInteger(value) ? integer.format(value) : decimal.format(value);
}

/** A number in little room: 1.2k, 3.4M. */
export function formatCompact(value) {
  const abs = Math.abs(value);
  if (abs >= 1e9) return `${decimal.format(value / 1e9)}B`;
  if (abs >= 1e6) return `${decimal.format(value / 1e6)}M`;
  if (abs >= 1e4) return `${decimal.format(value / 1e3)}k`;
  return formatNumber(Math.abs(value) >= 100 ? Math.round(value) : value);
}

export function formatBytes(bytes) {
  if (typeof bytes !== 'number') return '—';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  let n = bytes;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
}

export function formatMs(ms) {
  if (typeof ms !== 'number' || !Number.isFinite(ms)) return '—';
  if (ms < 10) return `${ms.toFixed(2)} ms`;
  if (ms < 100) return `${ms.toFixed(1)} ms`;
  return `${Math.round(ms)} ms`;
}

/** "12 s ago", "5 min ago", "3 h ago", "2 d ago". */
export function ago(date, now = Date.now()) {
  const t = date instanceof Date ? date.getTime() : Date.parse(date);
  if (!Number.isFinite(t)) return '—';
  const s = Math.max(0, Math.round((now - t) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

/** A cell's text for any JSON value. */
export function cellText(value) {
  if (value === null || value === undefined) return '∅';
  if (typeof value === 'number') return formatNumber(value);
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

// ---------- tables ----------

/**
 * A table of result rows: one column per key (in first-seen order),
 * numbers right-aligned.
 */
export function dataTable(rows, attrs = {}) {
  const columns = [];
  for (const row of rows) for (const key of Object.keys(row)) if (!columns.includes(key)) columns.push(key);
  const numeric = new Set(columns.filter((c) => rows.some((r) => typeof r[c] === 'number')));
  return h(
    'table',
    { class: 'data-table', ...attrs },
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col', class: numeric.has(c) ? 'num' : null }, c)))),
    h(
      'tbody',
      {},
      rows.map((row) => h('tr', {}, columns.map((c) => h('td', { class: numeric.has(c) ? 'num' : null }, cellText(row[c]))))),
    ),
  );
}

// ---------- dialogs ----------

/**
 * Opens a modal dialog (Escape closes it, the rest of the page is inert)
 * and gives focus back to what had it when it closes.
 */
export function openDialog(dialog, focus) {
  const opener = document.activeElement;
  dialog.addEventListener(
    'close',
    () => {
      if (opener && opener.isConnected && typeof opener.focus === 'function') opener.focus();
    },
    { once: true },
  );
  dialog.showModal();
  if (focus) focus.focus();
}

// ---------- field errors ----------

function errorId(form, name) {
  return `${form.id || 'form'}-error-${name.replace(/[^A-Za-z0-9_-]+/g, '-')}`;
}

/** Clears every `[data-error-for]` in `form` and the marks on its inputs. */
export function clearErrors(form) {
  for (const el of form.querySelectorAll('[data-error-for]')) {
    el.textContent = '';
    el.hidden = true;
  }
  for (const input of form.querySelectorAll('[aria-invalid]')) {
    input.removeAttribute('aria-invalid');
    const ids = (input.getAttribute('aria-describedby') || '').split(' ').filter((id) => id && !id.includes('-error-'));
    if (ids.length) input.setAttribute('aria-describedby', ids.join(' '));
    else input.removeAttribute('aria-describedby');
  }
}

/** An element that shows the error for input `name`, placed by the caller. */
export function errorSlot(form, name) {
  return h('p', { class: name === 'form' ? 'form-error' : 'field-error', id: errorId(form, name), dataset: { errorFor: name }, role: name === 'form' ? 'alert' : null, hidden: true });
}

/**
 * Shows `message` next to input `name` of `form` (its `[data-error-for]`
 * slot), marks the input invalid and points it at the message. When there
 * is no such input, the message goes to the form's `[data-error-for=form]`.
 * Returns the name used.
 */
export function showError(form, name, message) {
  const input = name === 'form' ? null : form.elements.namedItem(name);
  const control = input && !(input instanceof RadioNodeList) ? input : null;
  const target = control ? name : 'form';
  let slot = form.querySelector(`[data-error-for="${CSS.escape(target)}"]`);
  if (!slot) {
    slot = errorSlot(form, target);
    form.prepend(slot);
  }
  slot.textContent = message;
  slot.hidden = false;
  if (control) {
    control.setAttribute('aria-invalid', 'true');
    const ids = (control.getAttribute('aria-describedby') || '').split(' ').filter(Boolean);
    if (!slot.id) slot.id = errorId(form, target);
    if (!ids.includes(slot.id)) ids.push(slot.id);
    control.setAttribute('aria-describedby', ids.join(' '));
    if (!control.disabled && control.offsetParent !== null) control.focus();
  }
  return target;
}

// ---------- copying ----------

/** A button that copies the text of `source` (falls back to selecting it). */
export function copyButton(source, label) {
  const status = h('span', { class: 'sr-only', role: 'status' });
  const button = h(
    'button',
    {
      type: 'button',
      class: 'btn-small btn-ghost',
      onclick: async () => {
        const text = source.textContent;
        let copied = false;
        try {
          if (navigator.clipboard && window.isSecureContext) {
            await navigator.clipboard.writeText(text);
            copied = true;
          }
        } catch {
          copied = false;
        }
        if (!copied) {
          const range = document.createRange();
          range.selectNodeContents(source);
          const selection = getSelection();
          selection.removeAllRanges();
          selection.addRange(range);
        }
        const said = copied ? 'Copied' : 'Selected: press Ctrl+C';
        status.textContent = said;
        button.lastChild.textContent = copied ? 'Copied' : 'Selected';
        setTimeout(() => {
          button.lastChild.textContent = 'Copy';
          status.textContent = '';
        }, 1800);
      },
    },
    icon('copy'),
    h('span', { class: 'sr-only' }, `${label}: `),
    h('span', {}, 'Copy'),
  );
  return [button, status];
}
