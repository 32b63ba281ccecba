// A client generated from openapi/openapi.json with no hand edits
// (openapi-typescript types, openapi-fetch calls), driven against a running
// widget-data: query the seeded data, create, list, update and delete a
// widget, query it by id, and read a typed error. `tsc` type-checks it
// first, so a document that drifts from these calls fails here.
import createClient from 'openapi-fetch';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { components, paths } from './generated/schema.js';

type ErrorBody = components['schemas']['ErrorBody'];

interface Service {
  child: ChildProcess;
  url: string;
  demo: string;
}

function start(bin: string, dataDir: string): Promise<Service> {
  const child = spawn(bin, [], {
    env: { ...process.env, DATA_DIR: dataDir, LISTEN_ADDR: '127.0.0.1:0', RUST_LOG: 'warn' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((ok, fail) => {
    let out = '';
    const timer = setTimeout(() => fail(new Error(`no banner after 120 s:\n${out}`)), 120_000);
    child.on('exit', (code) => fail(new Error(`widget-data exited (${code}):\n${out}`)));
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const url = out.match(/listening on (http:\/\/\S+)/)?.[1];
      const demo = out.match(/^\s+demo user\s+(\S+)$/m)?.[1];
      if (url && demo && out.includes('try:')) {
        clearTimeout(timer);
        ok({ child, url, demo });
      }
    });
  });
}

async function run(service: Service): Promise<void> {
  const client = createClient<paths>({
    baseUrl: service.url,
    headers: { Authorization: `Bearer ${service.demo}` },
  });

  // The seeded servers, by status.
  const byStatus = await client.POST('/functions/v1/widget-data', {
    body: { config: { table: 'servers', aggregation: 'count', groupBy: 'status' } },
  });
  assert.equal(byStatus.response.status, 200);
  assert.ok(byStatus.data && 'cached' in byStatus.data, 'rows, not an action answer');
  const total = byStatus.data.data.reduce((n, row) => n + Number(row['value']), 0);
  assert.equal(total, 5000);

  // The demo dashboard.
  const boards = await client.GET('/rest/v1/dashboards', { params: { query: { select: 'id,name' } } });
  // Rows hold the columns `select` asked for, so every column is optional.
  const boardId = boards.data?.[0]?.id;
  assert.ok(boardId, 'the demo user has a dashboard');

  // Create a widget.
  const created = await client.POST('/rest/v1/dashboard_widgets', {
    params: { header: { Prefer: 'return=representation' } },
    body: [{
      dashboard_id: boardId,
      title: 'CPU by region',
      widget_type: 'chart',
      data_source: { table: 'servers', aggregation: 'avg', column: 'cpu_pct', groupBy: 'region' },
    }],
  });
  assert.equal(created.response.status, 201);
  const widget = created.data?.[0];
  assert.ok(widget?.id);
  assert.equal(widget.title, 'CPU by region');

  // The action form answers the widget row, typed: `data.data.id` needs no cast.
  const acted = await client.POST('/functions/v1/widget-data', {
    body: {
      action: 'create_widget',
      widget: { dashboard_id: boardId, widget_type: 'metric', data_source: { table: 'servers' } },
    },
  });
  assert.equal(acted.response.status, 201);
  assert.ok(acted.data && !('cached' in acted.data), 'an action answer, not rows');
  const actedId: string | undefined = acted.data.data.id;
  assert.ok(actedId);
  const removed = await client.POST('/functions/v1/widget-data', {
    body: { action: 'delete_widget', widget: { id: actedId } },
  });
  assert.equal(removed.response.status, 200);

  // List it.
  const listed = await client.GET('/rest/v1/dashboard_widgets', {
    params: { query: { dashboard_id: `eq.${boardId}`, order: 'created_at.desc' } },
  });
  assert.ok(listed.data?.some((w) => w.id === widget.id));

  // Update it.
  const updated = await client.PATCH('/rest/v1/dashboard_widgets', {
    params: { query: { id: `eq.${widget.id}` }, header: { Prefer: 'return=representation' } },
    body: { title: 'Average CPU by region', refresh_interval: 60 },
  });
  assert.equal(updated.data?.[0]?.refresh_interval, 60);

  // Query it by id.
  const byId = await client.POST('/functions/v1/widget-data', { body: { widget_id: widget.id } });
  assert.equal(byId.response.status, 200);
  assert.ok(byId.data && 'cached' in byId.data);
  assert.ok(byId.data.data.length > 0);
  assert.equal(byId.response.headers.get('cache-control'), 'private, no-cache');
  // Revalidation: the answer's ETag sent back is a 304 with no body.
  const etag = byId.response.headers.get('etag');
  assert.ok(etag?.startsWith('W/"'));
  const again = await client.POST('/functions/v1/widget-data', {
    body: { widget_id: widget.id },
    headers: { 'If-None-Match': etag },
  });
  assert.equal(again.response.status, 304);

  // A typed error: an unknown column, named in details.field.
  const bad = await client.POST('/functions/v1/widget-data', {
    body: { config: { table: 'servers', groupBy: 'no_such_column' } },
  });
  assert.equal(bad.response.status, 400);
  const error: ErrorBody | undefined = bad.error;
  assert.equal(error?.code, 'unknown_column');
  assert.deepEqual(error?.details, { field: 'config.groupBy' });

  // Delete it.
  const deleted = await client.DELETE('/rest/v1/dashboard_widgets', {
    params: { query: { id: `eq.${widget.id}` } },
  });
  assert.equal(deleted.response.status, 204);
  const gone = await client.GET('/rest/v1/dashboard_widgets', { params: { query: { id: `eq.${widget.id}` } } });
  assert.deepEqual(gone.data, []);
}

const bin = resolve(process.env['WIDGET_DATA_BIN'] ?? '../../../target/debug/widget-data');
const dataDir = mkdtempSync(join(tmpdir(), 'widget-data-ts-'));
chmodSync(dataDir, 0o755);
const service = await start(bin, dataDir);
let failed = false;
try {
  await run(service);
  console.log('TypeScript client (openapi-typescript + openapi-fetch): ok');
} catch (e) {
  failed = true;
  console.error(e);
} finally {
  service.child.kill('SIGTERM');
  await new Promise((ok) => service.child.once('exit', ok));
  rmSync(dataDir, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
