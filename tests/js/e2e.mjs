// Drives a running widget-data with the real supabase-js client, exactly as
// seed 004's frontend does, and checks rows, data and ownership.
//
//   WIDGET_DATA_BIN=../../target/debug/widget-data node e2e.mjs
//
// Starts the binary on a throwaway embedded cluster (loopback, port 0),
// reads the URL and tokens it prints, and stops it at the end.
import { createClient } from '@supabase/supabase-js';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHmac, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import ws from 'ws';

const bin = resolve(process.env.WIDGET_DATA_BIN ?? '../../target/debug/widget-data');
const dataDir = mkdtempSync(join(tmpdir(), 'widget-data-js-'));
chmodSync(dataDir, 0o755); // the embedded cluster may run as `postgres`

/** Starts the service; resolves with what its banner printed. */
function start() {
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
      const secret = out.match(/dev JWT secret: (\S+)/)?.[1];
      if (url && anon && demo && secret && out.includes('try:')) {
        clearTimeout(timer);
        ok({ child, url, anon, demo, secret });
      }
    });
  });
}

/** An HS256 token for another user, signed with the dev secret. */
function userToken(secret, sub) {
  const b64 = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({
    role: 'authenticated', aud: 'authenticated', sub, exp: Math.floor(Date.now() / 1000) + 600,
  })}`;
  return `${body}.${createHmac('sha256', secret).update(body).digest('base64url')}`;
}

// As seed 004's frontend: the anon key, and the user's token for every call.
// (Node 20 has no WebSocket of its own; supabase-js wants one for realtime,
// which this test never uses.)
const clientFor = (url, anonKey, userToken) =>
  createClient(url, anonKey, {
    global: { headers: { Authorization: 'Bearer ' + userToken } },
    auth: { persistSession: false, autoRefreshToken: false },
    realtime: { transport: ws },
  });

const service = await start();
let failed = false;
try {
  const { url, anon, demo, secret } = service;
  const supabase = clientFor(url, anon, demo);
  const other = clientFor(url, anon, userToken(secret, randomUUID()));

  const { data: boards, error: boardsError } = await supabase.from('dashboards').select('*');
  assert.equal(boardsError, null);
  assert.equal(boards.length, 1, 'the demo user has the seeded dashboard');
  const dashboardId = boards[0].id;

  // Save a widget.
  const dataSource = { table: 'servers', aggregation: 'count', groupBy: 'status' };
  const { data: inserted, error: insertError } = await supabase
    .from('dashboard_widgets')
    .insert([{ dashboard_id: dashboardId, title: 'By status', widget_type: 'chart', data_source: dataSource }])
    .select();
  assert.equal(insertError, null, JSON.stringify(insertError));
  assert.equal(inserted.length, 1);
  const widgetId = inserted[0].id;
  assert.deepEqual(inserted[0].data_source, dataSource);

  // List the dashboard's widgets.
  const { data: listed, error: listError } = await supabase
    .from('dashboard_widgets')
    .select('*')
    .eq('dashboard_id', dashboardId);
  assert.equal(listError, null);
  assert.equal(listed.length, 5, 'four seeded widgets and ours');
  assert.ok(listed.some((w) => w.id === widgetId && w.title === 'By status'));

  // Edit it.
  const { error: updateError } = await supabase
    .from('dashboard_widgets')
    .update({ title: 'Servers by status' })
    .eq('id', widgetId);
  assert.equal(updateError, null);
  const { data: edited } = await supabase.from('dashboard_widgets').select('title').eq('id', widgetId).single();
  assert.equal(edited.title, 'Servers by status');

  // A data source that would not compile is refused, naming the field.
  const { error: invalid } = await supabase
    .from('dashboard_widgets')
    .insert([{ dashboard_id: dashboardId, widget_type: 'chart', data_source: { table: 'no_such_table' } }])
    .select();
  assert.ok(invalid, 'an invalid data source is refused');
  assert.equal(invalid.details.field, 'data_source.table');

  // Query it by id, and the same data source ad hoc: same rows.
  const { data: byId, error: invokeError } = await supabase.functions.invoke('widget-data', {
    body: { widget_id: widgetId },
  });
  assert.equal(invokeError, null);
  const { data: adHoc } = await supabase.functions.invoke('widget-data', { body: { config: dataSource } });
  assert.ok(byId.data.length > 0);
  assert.deepEqual(byId.data, adHoc.data);
  assert.equal(byId.data.reduce((n, row) => n + row.value, 0), 5000, 'every seeded server counted once');

  // A second user sees none of it and can change none of it.
  const { data: theirs } = await other.from('dashboard_widgets').select('*').eq('dashboard_id', dashboardId);
  assert.deepEqual(theirs, []);
  const { data: hijacked } = await other.from('dashboard_widgets').update({ title: 'mine' }).eq('id', widgetId).select();
  assert.deepEqual(hijacked, []);
  const { error: notTheirs } = await other.functions.invoke('widget-data', { body: { widget_id: widgetId } });
  assert.equal(notTheirs?.context?.status, 404, 'another user\'s widget is not found');

  // Delete it.
  const { error: deleteError } = await supabase.from('dashboard_widgets').delete().eq('id', widgetId);
  assert.equal(deleteError, null);
  const { data: after } = await supabase.from('dashboard_widgets').select('id').eq('id', widgetId);
  assert.deepEqual(after, []);
  console.log('supabase-js e2e: ok (insert, select, update, single, invalid, invoke, second user, delete)');
} catch (e) {
  failed = true;
  console.error(e);
} finally {
  service.child.kill('SIGTERM');
  await new Promise((ok) => service.child.once('exit', ok));
  rmSync(dataDir, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
