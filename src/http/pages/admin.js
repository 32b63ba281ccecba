// The cache admin view (/admin, service_role only): seed 001's figures and
// more from /functions/v1/widget-data/stats, every 2 s while the tab is
// visible, a history chart, per-table data versions, and the widget
// bundle review queue.

import { call, get } from './api.js';
import { HISTORY_COLORS, historyChart } from './charts.js';
import { ago, formatBytes, formatMs, formatNumber, h, replace } from './dom.js';
import { boot } from './session.js';

const STATS = '/functions/v1/widget-data/stats';
const BUNDLES = '/functions/v1/widget-bundles';
const EVERY_MS = 2000;
const SAMPLE_SECS = 5;

const $ = (id) => document.getElementById(id);

const live = { timer: null, busy: false, paused: false, last: null };

boot(async (session) => {
  if (session.role !== 'service_role') {
    // Every figure here is service_role's: ask for none of them.
    $('admin-content').hidden = true;
    $('live').hidden = true;
    $('pause').hidden = true;
    replace(
      $('admin-denied'),
      h('h2', {}, 'This view needs the service_role token'),
      h('p', {}, `You are signed in as ${session.who} (${session.role}). Cache statistics and the bundle review queue are for service_role only.`),
      h('p', {}, h('button', { type: 'button', class: 'btn-primary', onclick: () => $('sign-out').click() }, 'Sign out and choose another token')),
    );
    $('admin-denied').hidden = false;
    return;
  }
  legend();
  $('pause').addEventListener('click', () => {
    live.paused = !live.paused;
    $('pause').textContent = live.paused ? 'Resume' : 'Pause';
    $('pause').setAttribute('aria-pressed', String(live.paused));
    if (live.paused) stop();
    else poll();
    showLive();
  });
  document.addEventListener('visibilitychange', () => {
    if (document.hidden) stop();
    else poll();
    showLive();
  });
  $('bundle-status').addEventListener('change', loadBundles);
  $('reload-bundles').addEventListener('click', loadBundles);
  poll();
  loadBundles();
});

// ---------- polling ----------

function stop() {
  clearTimeout(live.timer);
  live.timer = null;
}

async function poll() {
  stop();
  if (live.busy || live.paused || document.hidden) return;
  live.busy = true;
  try {
    render(await get(STATS));
    live.last = new Date();
    $('stats-error').hidden = true;
  } catch (e) {
    $('stats-error').textContent = `Could not read the statistics: ${e.message}. Retrying.`;
    $('stats-error').hidden = false;
  } finally {
    live.busy = false;
    showLive();
    if (!live.paused && !document.hidden) live.timer = setTimeout(poll, EVERY_MS);
  }
}

function showLive() {
  const paused = live.paused || document.hidden;
  $('live').classList.toggle('paused', paused);
  $('live-text').textContent = paused ? 'Paused' : `Live${live.last ? ` · updated ${live.last.toLocaleTimeString()}` : ''}`;
}

// ---------- figures ----------

function stat(name, text, raw) {
  for (const el of document.querySelectorAll(`[data-stat="${name}"]`)) {
    el.textContent = text;
    el.dataset.value = raw === null || raw === undefined ? '' : String(raw);
  }
}

const n = (v) => (typeof v === 'number' ? v : null);

function render(s) {
  const history = Array.isArray(s.history) ? s.history : [];
  stat('hit_rate', typeof s.hit_rate === 'number' ? `${(s.hit_rate * 100).toFixed(1)}%` : '—', n(s.hit_rate));
  stat('hits', formatNumber(n(s.hits)), n(s.hits));
  stat('misses', formatNumber(n(s.misses)), n(s.misses));
  const cached = s.cached_latency || {};
  const uncached = s.uncached_latency || {};
  stat('cached_ms', cached.samples ? formatMs(cached.mean_ms) : '—', cached.samples ? cached.mean_ms : null);
  stat('uncached_ms', uncached.samples ? formatMs(uncached.mean_ms) : '—', uncached.samples ? uncached.mean_ms : null);
  $('cached-p95').textContent = cached.samples ? `p95 ${formatMs(cached.p95_ms)} · ${formatNumber(cached.samples)} answers` : 'no cached answers yet';
  $('uncached-p95').textContent = uncached.samples ? `p95 ${formatMs(uncached.p95_ms)} · ${formatNumber(uncached.samples)} answers` : 'no uncached answers yet';
  stat('bytes', formatBytes(n(s.bytes)), n(s.bytes));
  stat('entries', formatNumber(n(s.entries)), n(s.entries));
  stat('last_invalidation', s.last_invalidation_at ? ago(s.last_invalidation_at) : 'never', s.last_invalidation_at || null);
  $('invalidations-total').textContent = `${formatNumber(n(s.invalidations))} in all`;
  stat('active_widgets', typeof s.active_widgets === 'number' ? formatNumber(s.active_widgets) : '—', n(s.active_widgets));
  const minutes = (history.length * SAMPLE_SECS) / 60;
  const perMin = minutes > 0 ? history.reduce((sum, x) => sum + (Number(x.invalidations) || 0), 0) / minutes : null;
  stat('invalidations_per_min', perMin === null ? '—' : `${perMin < 10 ? perMin.toFixed(1) : Math.round(perMin)} / min`, perMin === null ? null : Number(perMin.toFixed(3)));
  $('window').textContent = minutes > 0 ? `over the last ${minutes < 1 ? `${Math.round(minutes * 60)} s` : `${formatNumber(Number(minutes.toFixed(1)))} min`}` : 'collecting samples';
  stat('evictions', formatNumber(n(s.evictions)), n(s.evictions));
  stat('coalesced', formatNumber(n(s.coalesced)), n(s.coalesced));
  stat('stale', formatNumber(n(s.stale_serves)), n(s.stale_serves));
  stat('executions', formatNumber(n(s.executions)), n(s.executions));
  historyChart($('history-chart'), history);
  tables(s.tables);
  details(s);
}

function legend() {
  replace(
    $('history-legend'),
    [
      ['Hit rate', HISTORY_COLORS.hitRate, ''],
      ['Cached', HISTORY_COLORS.cached, 's1'],
      ['Uncached', HISTORY_COLORS.uncached, 's2'],
    ].map(([name, , cls]) => h('li', {}, h('span', { class: `swatch ${cls}`, 'aria-hidden': 'true' }), name)),
  );
}

function tables(list) {
  const body = $('tables').tBodies[0];
  if (!Array.isArray(list)) {
    replace(body, h('tr', {}, h('td', { colspan: '3', class: 'muted' }, 'Not reported by this server.')));
    return;
  }
  if (!list.length) {
    replace(body, h('tr', {}, h('td', { colspan: '3', class: 'muted' }, 'No table read yet.')));
    return;
  }
  replace(
    body,
    list.map((t) =>
      h(
        'tr',
        { dataset: { table: t.table } },
        h('th', { scope: 'row' }, t.table),
        h('td', {}, h('code', {}, t.version ?? '—')),
        h('td', {}, h('span', { class: `badge ${t.watched ? 'approved' : 'pending'}` }, t.watched ? 'watched' : 'not watched')),
      ),
    ),
  );
}

function kv(title, pairs, note) {
  return h(
    'div',
    { class: 'kv-group' },
    h('h3', {}, title),
    note ? h('p', { class: 'muted small' }, note) : null,
    pairs.length ? h('dl', { class: 'kv' }, pairs.map(([k, v]) => [h('dt', {}, k), h('dd', {}, typeof v === 'number' ? formatNumber(v) : String(v ?? '—'))])) : null,
  );
}

function details(s) {
  const levels = s.levels || {};
  const warming = s.warming || {};
  const q = s.queries || {};
  const redis = s.redis;
  replace(
    $('details'),
    kv('Where hits came from', [
      ['memory', levels.memory],
      ['Redis', levels.redis],
      ['table', levels.table],
    ]),
    kv('Warming', [
      ['warmed', warming.warmed],
      ['failures', warming.failures],
      ['left to another instance', warming.elsewhere],
      ['tracked', warming.tracked],
    ]),
    redis
      ? kv('Redis', [
          ['hits', redis.hits],
          ['misses', redis.misses],
          ['errors', redis.errors],
          ['timeouts', redis.timeouts],
          ['skipped', redis.skipped],
          ['breaker', redis.breaker],
          ['breaker opened', redis.breaker_opened],
        ])
      : kv('Redis', [], 'Not configured (no REDIS_URL).'),
    kv(
      'Queries',
      [
        ['on the primary', q.primary],
        ...(q.replicas
          ? [
              ['on a replica', q.replica],
              ['refused for lag', q.refused_for_lag],
              ['replica failures', q.replica_failures],
              ['replicas healthy', `${formatNumber(q.healthy_replicas)} of ${formatNumber(q.replicas)}`],
            ]
          : []),
      ],
      q.replicas ? null : 'No read replicas configured.',
    ),
  );
}

// ---------- bundle review queue ----------

async function loadBundles() {
  const status = $('bundle-status').value;
  const list = $('bundle-list');
  list.setAttribute('aria-busy', 'true');
  try {
    const bundles = await get(status ? `${BUNDLES}?status=${encodeURIComponent(status)}` : BUNDLES);
    showBundles(Array.isArray(bundles) ? bundles : []);
  } catch (e) {
    replace(list, h('li', { class: 'notice error' }, `Could not load the bundles: ${e.message}`));
  } finally {
    list.removeAttribute('aria-busy');
  }
}

function showBundles(bundles) {
  const list = $('bundle-list');
  if (!bundles.length) {
    replace(list, h('li', { class: 'muted' }, $('bundle-status').value === 'pending' ? 'No bundles are waiting for review.' : 'No bundles registered.'));
    return;
  }
  replace(
    list,
    bundles.map((b) => {
      const name = `${b.bundle_id} v${b.version}`;
      const findings = Array.isArray(b.findings) ? b.findings : [];
      return h(
        'li',
        { class: 'bundle', dataset: { bundleId: b.bundle_id, version: b.version, status: b.status } },
        h('div', { class: 'bundle-head' }, h('h3', {}, name), h('span', { class: `badge ${b.status}` }, b.status)),
        h(
          'p',
          { class: 'bundle-meta' },
          `${b.origin_url} · ${formatBytes(b.size_bytes)} · sha256 ${String(b.sha256 || '').slice(0, 12)}… · fetched ${ago(b.fetched_at)}`,
          b.declared_hosts && b.declared_hosts.length ? ` · may call ${b.declared_hosts.join(', ')}` : '',
          b.drift_count ? ` · origin changed ${b.drift_count}×` : '',
        ),
        findings.length
          ? h(
              'ul',
              { class: 'findings', 'aria-label': `Findings in ${name}` },
              findings.map((f) => h('li', {}, h('span', { class: `badge ${f.severity}` }, f.severity), h('code', {}, `${f.rule} ${f.line}:${f.column}`), h('span', {}, f.message))),
            )
          : h('p', { class: 'muted small' }, 'The analysis found nothing.'),
        h(
          'div',
          { class: 'bundle-actions' },
          b.status !== 'approved' ? h('button', { type: 'button', class: 'btn-primary btn-small', dataset: { action: 'approve' }, onclick: () => review(b, 'approved') }, 'Approve', h('span', { class: 'sr-only' }, ` ${name}`)) : null,
          b.status !== 'rejected' ? h('button', { type: 'button', class: 'btn-small', dataset: { action: 'reject' }, onclick: () => review(b, 'rejected') }, 'Reject', h('span', { class: 'sr-only' }, ` ${name}`)) : null,
        ),
      );
    }),
  );
}

async function review(bundle, status) {
  const said = $('review-status');
  try {
    await call(`${BUNDLES}/${encodeURIComponent(bundle.bundle_id)}/${encodeURIComponent(bundle.version)}`, { method: 'PATCH', body: { status } });
    said.textContent = `${bundle.bundle_id} v${bundle.version}: ${status}.`;
    said.className = 'notice';
  } catch (e) {
    said.textContent = `Could not review ${bundle.bundle_id} v${bundle.version}: ${e.message}`;
    said.className = 'notice error';
  }
  said.hidden = false;
  await loadBundles();
  $('bundle-list').focus();
}
