// A client generated from openapi/openapi.json with no hand edits
// (openapi-typescript types, openapi-fetch calls), driven against a running
// widget-data: query the seeded data, create, list, update and delete a
// widget, query it by id, and read a typed error. `tsc` type-checks it
// first, so a document that drifts from these calls fails here.
import createClient from 'openapi-fetch';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { components, paths } from './generated/schema.js';

type ErrorBody = components['schemas']['ErrorBody'];

interface Service {
  child: ChildProcess;
  url: string;
  demo: string;
  serviceRole: string;
}

function start(bin: string, dataDir: string): Promise<Service> {
  const child = spawn(bin, [], {
    // Bundles are fetched from this test's own origin on loopback.
    env: {
      ...process.env, DATA_DIR: dataDir, LISTEN_ADDR: '127.0.0.1:0', RUST_LOG: 'warn',
      BUNDLE_ALLOW_HOSTS: '127.0.0.1',
    },
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
      const serviceRole = out.match(/^\s+service_role\s+(\S+)$/m)?.[1];
      if (url && demo && serviceRole && out.includes('try:')) {
        clearTimeout(timer);
        ok({ child, url, demo, serviceRole });
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

// A widget developer's origin on loopback, serving one clean bundle.
const BUNDLE = 'export function render(el) { el.textContent = "hello from a widget"; }\n';

function origin(): Promise<Server> {
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/javascript' });
    res.end(BUNDLE);
  });
  return new Promise((ok) => server.listen(0, '127.0.0.1', () => ok(server)));
}

// Publish a bundle version, have service_role approve it, and load the
// pinned copy with its integrity.
async function bundles(service: Service): Promise<void> {
  const developer = createClient<paths>({
    baseUrl: service.url,
    headers: { Authorization: `Bearer ${service.demo}` },
  });
  const reviewer = createClient<paths>({
    baseUrl: service.url,
    headers: { Authorization: `Bearer ${service.serviceRole}` },
  });
  const server = await origin();
  try {
    const { port } = server.address() as AddressInfo;
    const registered = await developer.POST('/functions/v1/widget-bundles', {
      body: {
        bundle_id: 'ts-ticker',
        version: '1.0.0',
        url: `http://127.0.0.1:${port}/bundle`,
        declared_hosts: [],
      },
    });
    assert.equal(registered.response.status, 201, JSON.stringify(registered.error));
    const version = registered.data;
    assert.ok(version);
    assert.equal(version.status, 'pending');
    assert.deepEqual(version.findings, []);
    const integrity = 'sha384-' + createHash('sha384').update(BUNDLE).digest('base64');
    assert.equal(version.integrity, integrity);
    assert.equal(version.url, '/widgets/ts-ticker/v1.0.0/bundle.js');

    const mine = await developer.GET('/functions/v1/widget-bundles', {});
    assert.ok(mine.data?.some((v) => v.bundle_id === 'ts-ticker' && v.version === '1.0.0'));

    // Not approved yet: hidden from everyone else.
    assert.equal((await fetch(service.url + version.url)).status, 404);
    const approved = await reviewer.PATCH('/functions/v1/widget-bundles/{bundle_id}/{version}', {
      params: { path: { bundle_id: 'ts-ticker', version: '1.0.0' } },
      body: { status: 'approved' },
    });
    assert.equal(approved.data?.status, 'approved');

    const served = await fetch(service.url + version.url);
    assert.equal(served.status, 200);
    assert.equal(await served.text(), BUNDLE);
    assert.equal(served.headers.get('cache-control'), 'public, max-age=31536000, immutable');

    // A typed refusal: 127.0.0.2 is not on BUNDLE_ALLOW_HOSTS (refused before connecting).
    const refused = await developer.POST('/functions/v1/widget-bundles', {
      body: { bundle_id: 'ts-ticker', version: '1.0.1', url: 'http://127.0.0.2/bundle' },
    });
    assert.equal(refused.response.status, 422);
    assert.equal(refused.error?.code, 'bundle_forbidden_address');
  } finally {
    server.close();
  }
}

const bin = resolve(process.env['WIDGET_DATA_BIN'] ?? '../../../target/debug/widget-data');
const dataDir = mkdtempSync(join(tmpdir(), 'widget-data-ts-'));
chmodSync(dataDir, 0o755);
const service = await start(bin, dataDir);
let failed = false;
try {
  await run(service);
  await bundles(service);
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
