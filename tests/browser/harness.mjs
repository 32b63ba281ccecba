// The browser suite's harness: the real binary on a throwaway embedded
// cluster, a SQL connection to that cluster, Debian's Chromium, and the
// small helpers the checks in run.mjs share. See run.mjs for how to run.
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { chromium } from 'playwright-core';

const require = createRequire(import.meta.url);

/**
 * Starts widget-data on a fresh DATA_DIR (loopback, port 0) and resolves
 * with what its banner printed: the URL, the three dev tokens and the
 * embedded cluster's database URL. PAGES_DIR is passed through only when
 * the caller's environment has it (development against pages on disk); CI
 * serves the pages compiled into the binary. `spawned(service)` is called
 * at once, so that an interrupted start can still be stopped.
 */
export async function startService(bin, spawned = () => {}) {
  const dataDir = mkdtempSync(join(tmpdir(), 'widget-data-browser-'));
  chmodSync(dataDir, 0o755); // the embedded cluster may run as `postgres`
  const child = spawn(bin, [], {
    env: { ...process.env, DATA_DIR: dataDir, LISTEN_ADDR: '127.0.0.1:0', RUST_LOG: process.env.RUST_LOG ?? 'warn' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const service = { child, dataDir, exited: false };
  child.on('exit', () => { service.exited = true; });
  child.on('error', () => { service.exited = true; }); // not started (ENOENT, EACCES)
  spawned(service);
  try {
    const banner = await new Promise((resolveBanner, rejectBanner) => {
      let out = '';
      const timer = setTimeout(() => fail(new Error(`no banner after 120 s:\n${out}`)), 120_000);
      const ok = (v) => { clearTimeout(timer); resolveBanner(v); };
      const fail = (e) => { clearTimeout(timer); rejectBanner(e); };
      child.on('exit', (code, signal) => fail(new Error(`widget-data exited (${code ?? signal}):\n${out}`)));
      child.on('error', fail);
      child.stdout.on('data', (chunk) => {
        if (out.length > 100_000) return; // keep draining; the banner is long done
        out += chunk;
        const found = {
          url: out.match(/listening on (http:\/\/\S+)/)?.[1],
          anon: out.match(/^\s+anon\s+(\S+)$/m)?.[1],
          demo: out.match(/^\s+demo user\s+(\S+)$/m)?.[1],
          service: out.match(/^\s+service_role\s+(\S+)$/m)?.[1],
          database: out.match(/^\s+database: (\S+)$/m)?.[1],
        };
        if (Object.values(found).every(Boolean) && out.includes('try:')) ok(found);
      });
    });
    return Object.assign(service, banner);
  } catch (e) {
    await stopService(service);
    throw e;
  }
}

/**
 * Stops the service: SIGTERM (the binary stops its cluster), SIGKILL after
 * 15 s; waits for the cluster's postmaster.pid to go, then removes
 * DATA_DIR. Idempotent: every caller gets the same promise.
 */
export function stopService(service) {
  if (!service) return Promise.resolve();
  service.stopping ??= (async () => {
    const { child } = service;
    if (child.pid !== undefined && !service.exited && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((ok) => child.once('exit', ok));
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(killer);
    }
    const pid = join(service.dataDir, 'postgres', 'postmaster.pid');
    for (let i = 0; i < 100 && existsSync(pid); i++) await new Promise((ok) => setTimeout(ok, 100));
    rmSync(service.dataDir, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
  })();
  return service.stopping;
}

/**
 * A superuser connection to the embedded cluster, from the banner's URL
 * (`postgres://postgres:<pw>@localhost/postgres?host=<socket dir>`), in
 * UTC like the service's own queries.
 */
export async function connectSql(databaseUrl) {
  const u = new URL(databaseUrl);
  const client = new pg.Client({
    host: u.searchParams.get('host') ?? u.hostname,
    user: decodeURIComponent(u.username),
    password: decodeURIComponent(u.password),
    database: decodeURIComponent(u.pathname.slice(1)) || 'postgres',
  });
  await client.connect();
  await client.query("SET TimeZone = 'UTC'");
  return client;
}

/**
 * Debian's Chromium (never a downloaded build); as root it needs
 * --no-sandbox. Signals are left to the suite, which closes the browser
 * and stops the service before it exits (playwright's own handlers would
 * exit at once and orphan the service); playwright still kills the browser
 * when the process exits.
 */
export function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-dev-shm-usage'],
    handleSIGINT: false,
    handleSIGTERM: false,
    handleSIGHUP: false,
  });
}

export const VIEWPORTS = {
  desktop: { viewport: { width: 1280, height: 800 } },
  phone: { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 },
};

/** A context whose pages start signed in with `token` (the pages' contract). */
export async function signedIn(browser, token, options = {}) {
  const context = await browser.newContext({ ...VIEWPORTS.desktop, ...options });
  if (token) {
    await context.addInitScript((t) => sessionStorage.setItem('widget-data.token', t), token);
  }
  return context;
}

/**
 * Records what would make a page load unclean: console errors, uncaught
 * exceptions, failed requests and answers of 400 or more.
 */
export function watchProblems(page) {
  const problems = [];
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console error: ${m.text()} (${m.location()?.url ?? ''})`);
  });
  page.on('pageerror', (e) => problems.push(`uncaught: ${e.message}`));
  page.on('requestfailed', (r) => problems.push(`request failed: ${r.method()} ${r.url()}: ${r.failure()?.errorText}`));
  page.on('response', (r) => {
    if (r.status() >= 400) problems.push(`HTTP ${r.status()}: ${r.request().method()} ${r.url()}`);
  });
  return problems;
}

/** axe-core's source, injected by the test (the pages never ship it). */
export const axeSource = () => readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

/** Polls `fn` until it returns a truthy value; throws with `what` after `ms`. */
export async function until(what, fn, ms = 10_000, every = 100) {
  const end = Date.now() + ms;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) {
      throw new Error(`timed out after ${ms} ms waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    }
    await new Promise((ok) => setTimeout(ok, every));
  }
}

/**
 * A number as a page shows it ("3,091", "49.87", "87.5 %") against the
 * exact figure: equal once the exact one is rounded to the decimals shown.
 */
export function shownEquals(shown, exact) {
  const text = String(shown).replace(/[\s,\u00a0\u202f%]/g, '');
  const n = Number(text);
  if (!Number.isFinite(n)) return false;
  const decimals = text.includes('.') ? text.split('.')[1].replace(/[^0-9]/g, '').length : 0;
  return Math.abs(n - Number(exact)) <= 0.5 * 10 ** -decimals + 1e-9;
}

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
/** Nearest-rank percentile. */
export const percentile = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.max(0, Math.ceil((p / 100) * s.length) - 1)];
};
