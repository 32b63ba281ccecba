// The token, the calls to the service and its errors, shared by every page.
// No DOM here: pages decide how to show what this returns or throws.

export const TOKEN_KEY = 'widget-data.token';
const NOTICE_KEY = 'widget-data.notice';

/** The signed-in token, or null. */
export function getToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

export function setToken(token) {
  sessionStorage.setItem(TOKEN_KEY, token.trim());
}

export function clearToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

/** A message for the next sign-in screen (why the session ended), once. */
export function takeNotice() {
  const notice = sessionStorage.getItem(NOTICE_KEY);
  sessionStorage.removeItem(NOTICE_KEY);
  return notice;
}

/**
 * The claims of a JWT, read without checking the signature (the service
 * checks it; the page only wants the role and the user for display), or
 * null when it is not a JWT.
 */
export function claimsOf(token) {
  const part = (token || '').split('.')[1];
  if (!part) return null;
  try {
    const b64 = part.replace(/-/g, '+').replace(/_/g, '/');
    const bin = atob(b64.padEnd(b64.length + ((4 - (b64.length % 4)) % 4), '='));
    const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    return claims && typeof claims === 'object' ? claims : null;
  } catch {
    return null;
  }
}

/** True when the token's `exp` has passed (a token without one is kept). */
export function isExpired(claims) {
  return Boolean(claims && typeof claims.exp === 'number' && claims.exp * 1000 <= Date.now());
}

/** A failed call: the service's `{code, message, details, hint}`, and the status. */
export class ApiError extends Error {
  constructor(status, code, message, details = null, hint = null) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.details = details;
    this.hint = hint;
  }

  /** The path of the offending request field, when the service named one. */
  get field() {
    const field = this.details && this.details.field;
    return typeof field === 'string' ? field : null;
  }

  /** The message without a leading "<field>: ". */
  get reason() {
    const field = this.field;
    if (field && this.message.startsWith(`${field}: `)) return this.message.slice(field.length + 2);
    return this.message;
  }

  static from(status, body) {
    if (body && typeof body === 'object' && typeof body.message === 'string') {
      return new ApiError(status, body.code || 'error', body.message, body.details ?? null, body.hint ?? null);
    }
    const text = typeof body === 'string' && body.trim() ? body.trim().slice(0, 200) : `HTTP ${status}`;
    return new ApiError(status, 'http_error', text);
  }
}

let ending = false;

/**
 * The service refused the token: forget it and start again at sign-in,
 * saying why. Every page reacts the same way, once.
 */
function sessionEnded(error) {
  if (ending) return;
  ending = true;
  clearToken();
  try {
    sessionStorage.setItem(NOTICE_KEY, `Signed out: the service refused the token (${error.message}).`);
  } catch {
    // Storage full or blocked: the sign-in screen just shows no reason.
  }
  location.reload();
}

/**
 * Calls the service with the signed-in token. Resolves to
 * `{ data, response }`; throws ApiError for any non-2xx answer (and a
 * network failure, status 0). A 401 ends the session.
 */
export async function call(path, { method = 'GET', body, headers = {}, prefer, signal, auth = true } = {}) {
  const token = getToken();
  const sent = { Accept: 'application/json', ...headers };
  if (auth && token) sent.Authorization = `Bearer ${token}`;
  if (body !== undefined) sent['Content-Type'] = 'application/json';
  if (prefer) sent.Prefer = prefer;
  let response;
  try {
    response = await fetch(path, {
      method,
      headers: sent,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
      credentials: 'omit',
    });
  } catch (e) {
    if (e && e.name === 'AbortError') throw e;
    throw new ApiError(0, 'network_error', 'The service did not answer. Is it running?');
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = text;
    }
  }
  if (!response.ok) {
    const error = ApiError.from(response.status, data);
    if (response.status === 401 && auth && token) sessionEnded(error);
    throw error;
  }
  return { data, response };
}

/** GET and return the body. */
export async function get(path, options) {
  return (await call(path, options)).data;
}

// ---------- the service's endpoints ----------

export const WIDGET_DATA = '/functions/v1/widget-data';

/**
 * The dev tokens the embedded server prints, or null when it does not
 * offer them (a real deployment).
 */
export async function devTokens() {
  try {
    const { data } = await call('/dev/tokens', { auth: false });
    return data && Array.isArray(data.tokens) && data.tokens.length ? data.tokens : null;
  } catch {
    return null;
  }
}

/**
 * Runs a widget query. `request` is `{config}` or `{widget_id}` plus
 * options. Resolves to the body plus `xCache` (the `x-cache` header).
 */
export async function queryWidget(request, signal) {
  const { data, response } = await call(WIDGET_DATA, { method: 'POST', body: request, signal });
  return { ...data, xCache: response.headers.get('x-cache') };
}

let schemaPromise = null;

/** The tables the caller may read, from /schema; fetched once per page. */
export function loadSchema() {
  if (!schemaPromise) {
    schemaPromise = get(`${WIDGET_DATA}/schema`).then(
      (body) => new Schema(body && Array.isArray(body.tables) ? body.tables : []),
      (e) => {
        schemaPromise = null;
        throw e;
      },
    );
  }
  return schemaPromise;
}

const NUMERIC = new Set(['integer', 'float', 'numeric']);
const TEMPORAL = new Set(['timestamptz', 'timestamp', 'date']);

export const kinds = {
  numeric: (kind) => NUMERIC.has(kind),
  temporal: (kind) => TEMPORAL.has(kind),
  filterable: (kind) => kind !== 'json' && kind !== 'other',
};

/** The live schema: tables by the name a data source uses for them. */
export class Schema {
  constructor(tables) {
    this.tables = tables.map((t) => ({
      ...t,
      ref: t.schema === 'public' ? t.name : `${t.schema}.${t.name}`,
      columns: Array.isArray(t.columns) ? t.columns : [],
    }));
  }

  /** The table a data source's `table` names (`servers` or `public.servers`). */
  table(ref) {
    if (!ref) return null;
    const name = ref.includes('.') ? ref : `public.${ref}`;
    return this.tables.find((t) => `${t.schema}.${t.name}` === name) || null;
  }

  column(tableRef, name) {
    const table = this.table(tableRef);
    return (table && table.columns.find((c) => c.name === name)) || null;
  }
}

/**
 * A form's text turned into the JSON a column of `kind` expects: numbers
 * for numeric columns, booleans for boolean ones; text stays text (the
 * service says what is wrong with it).
 */
export function typedValue(text, kind) {
  const value = String(text).trim();
  if (NUMERIC.has(kind) && value !== '' && Number.isFinite(Number(value))) return Number(value);
  if (kind === 'boolean' && /^(true|false)$/i.test(value)) return value.toLowerCase() === 'true';
  return value;
}

/** The caller's dashboards, oldest first. */
export function listDashboards() {
  return get('/rest/v1/dashboards?select=id,name,description&order=created_at.asc');
}

/** The widgets of a dashboard. */
export function listWidgets(dashboardId) {
  return get(`/rest/v1/dashboard_widgets?dashboard_id=eq.${encodeURIComponent(dashboardId)}&order=created_at.asc`);
}

/**
 * Inserts a widget; resolves to the saved row. A widget's owner defaults
 * to the caller (`auth.uid()`); a token without a user (service_role)
 * saves it as the dashboard owner's.
 */
export async function insertWidget(row) {
  const claims = claimsOf(getToken());
  if (!row.owner_id && !(claims && claims.sub)) {
    const [board] = await get(`/rest/v1/dashboards?select=owner_id&id=eq.${encodeURIComponent(row.dashboard_id)}`);
    if (board) row = { ...row, owner_id: board.owner_id };
  }
  const body = await get('/rest/v1/dashboard_widgets', {
    method: 'POST',
    body: [row],
    prefer: 'return=representation',
  });
  return Array.isArray(body) ? body[0] : body;
}

/**
 * The first free row below a dashboard's widgets: where a new widget goes.
 */
export function nextFreeRow(widgets) {
  return widgets.reduce((y, w) => {
    const p = w.position || {};
    return Math.max(y, (Number(p.y) || 0) + (Number(p.h) || 0));
  }, 0);
}

/** The size a new widget of this type starts with on the 12-column grid. */
export function defaultSize(widgetType) {
  if (widgetType === 'metric' || widgetType === 'stat' || widgetType === 'gauge') return { w: 3, h: 2 };
  if (widgetType === 'trend') return { w: 12, h: 4 };
  return { w: 6, h: 4 };
}
