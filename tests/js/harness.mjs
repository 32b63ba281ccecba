// What every supabase-js suite file shares: the binary started on a
// throwaway embedded cluster (loopback, port 0), its banner read, clients
// made as seed 004's frontend makes them, and everything stopped at the
// end, pass or fail.
//
//   WIDGET_DATA_BIN=../../target/debug/widget-data node <suite>.mjs
import { createClient } from '@supabase/supabase-js';
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtempSync, rmSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import ws from 'ws';

const bin = resolve(process.env.WIDGET_DATA_BIN ?? '../../target/debug/widget-data');

/** Starts the service; resolves with what its banner printed. */
function start(dataDir) {
  const child = spawn(bin, [], {
    env: { ...process.env, DATA_DIR: dataDir, LISTEN_ADDR: '127.0.0.1:0', RUST_LOG: 'warn' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((ok, fail) => {
    let out = '';
    const timer = setTimeout(() => fail(new Error(`no banner after 120 s:\n${out}`)), 120_000);
    child.on('exit', (code) => fail(new Error(`widget-data exited (${code}):\n${out}`)));
    child.stdout.on('data', (chunk) => {
      out += chunk;
      const url = out.match(/listening on (http:\/\/\S+)/)?.[1];
      const anon = out.match(/^\s+anon\s+(\S+)$/m)?.[1];
      const demo = out.match(/^\s+demo user\s+(\S+)$/m)?.[1];
      const service = out.match(/^\s+service_role\s+(\S+)$/m)?.[1];
      const secret = out.match(/dev JWT secret: (\S+)/)?.[1];
      if (url && anon && demo && service && secret && out.includes('try:')) {
        clearTimeout(timer);
        ok({ child, url, anon, demo, service, secret });
      }
    });
  });
}

/** An HS256 token for another user, signed with the dev secret. */
export function userToken(secret, sub) {
  const b64 = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({
    role: 'authenticated', aud: 'authenticated', sub, exp: Math.floor(Date.now() / 1000) + 600,
  })}`;
  return `${body}.${createHmac('sha256', secret).update(body).digest('base64url')}`;
}

/**
 * As seed 004's frontend: the anon key, and the user's token for every
 * call. (Node 20 has no WebSocket of its own; supabase-js wants one for
 * realtime, which these suites never use.)
 */
export const clientFor = (url, anonKey, token) =>
  createClient(url, anonKey, {
    global: { headers: { Authorization: 'Bearer ' + token } },
    auth: { persistSession: false, autoRefreshToken: false },
    realtime: { transport: ws },
  });

/**
 * Runs `body(service)` against a fresh service, prints `name: ok` or the
 * failure, stops the service and removes its data, and exits 0 or 1.
 */
export async function suite(name, body) {
  const dataDir = mkdtempSync(join(tmpdir(), 'widget-data-js-'));
  chmodSync(dataDir, 0o755); // the embedded cluster may run as `postgres`
  let service;
  let failed = false;
  try {
    service = await start(dataDir);
    const summary = await body(service);
    console.log(`${name}: ok${summary ? ` (${summary})` : ''}`);
  } catch (e) {
    failed = true;
    console.error(`${name}: FAILED`);
    console.error(e);
  } finally {
    if (service) {
      service.child.kill('SIGTERM');
      await new Promise((ok) => service.child.once('exit', ok));
    }
    rmSync(dataDir, { recursive: true, force: true });
  }
  process.exit(failed ? 1 : 0);
}
