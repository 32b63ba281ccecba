// Filter preferences saved with supabase-js `upsert`, as a dashboard
// frontend writes them: one row per user, dashboard and key.
//
//   WIDGET_DATA_BIN=../../target/debug/widget-data node upsert.mjs
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { clientFor, suite, userToken } from './harness.mjs';

const onConflict = 'user_id,dashboard_id,filter_key';

await suite('supabase-js upsert', async (service) => {
  const { url, anon, demo, secret } = service;
  const supabase = clientFor(url, anon, demo);
  const demoUserId = JSON.parse(Buffer.from(demo.split('.')[1], 'base64url')).sub;

  const { data: boards, error: boardsError } = await supabase.from('dashboards').select('id');
  assert.equal(boardsError, null);
  const dashboardId = boards[0].id;
  const prefs = () =>
    supabase
      .from('user_filter_preferences')
      .select('filter_key, value')
      .eq('dashboard_id', dashboardId)
      .order('filter_key');

  // Saved twice: one row, with the second value.
  for (const value of ['eu', 'us']) {
    const { error } = await supabase
      .from('user_filter_preferences')
      .upsert({ dashboard_id: dashboardId, filter_key: 'region', value }, { onConflict });
    assert.equal(error, null, JSON.stringify(error));
  }
  const { data: once, error: onceError } = await prefs();
  assert.equal(onceError, null);
  assert.deepEqual(once, [{ filter_key: 'region', value: 'us' }]);

  // An array (supabase-js adds `columns=`): one merged, one inserted,
  // both given back with `.select()`.
  const { data: both, error: arrayError } = await supabase
    .from('user_filter_preferences')
    .upsert(
      [
        { dashboard_id: dashboardId, filter_key: 'region', value: 'apac' },
        { dashboard_id: dashboardId, filter_key: 'status', value: ['Online', 'Degraded'] },
      ],
      { onConflict },
    )
    .select('filter_key, value');
  assert.equal(arrayError, null, JSON.stringify(arrayError));
  assert.equal(both.length, 2);
  const { data: afterArray } = await prefs();
  assert.deepEqual(afterArray, [
    { filter_key: 'region', value: 'apac' },
    { filter_key: 'status', value: ['Online', 'Degraded'] },
  ]);

  // ignoreDuplicates: the existing row stays; only new rows come back.
  const { data: ignored, error: ignoreError } = await supabase
    .from('user_filter_preferences')
    .upsert(
      [
        { dashboard_id: dashboardId, filter_key: 'region', value: 'ignored' },
        { dashboard_id: dashboardId, filter_key: 'range', value: { days: 7 } },
      ],
      { onConflict, ignoreDuplicates: true },
    )
    .select('filter_key, value');
  assert.equal(ignoreError, null, JSON.stringify(ignoreError));
  assert.deepEqual(ignored, [{ filter_key: 'range', value: { days: 7 } }]);
  const { data: afterIgnore } = await prefs();
  assert.deepEqual(afterIgnore, [
    { filter_key: 'range', value: { days: 7 } },
    { filter_key: 'region', value: 'apac' },
    { filter_key: 'status', value: ['Online', 'Degraded'] },
  ]);

  // A constraint the table does not have is refused, naming on_conflict.
  const { error: badKey } = await supabase
    .from('user_filter_preferences')
    .upsert({ dashboard_id: dashboardId, filter_key: 'region', value: 'x' }, { onConflict: 'filter_key' });
  assert.ok(badKey, 'an on_conflict that names no unique constraint is refused');
  assert.equal(badKey.details.field, 'query.on_conflict');

  // Another user cannot upsert onto the demo user's key.
  const other = clientFor(url, anon, userToken(secret, randomUUID()));
  const { error: notTheirs } = await other
    .from('user_filter_preferences')
    .upsert({ user_id: demoUserId, dashboard_id: dashboardId, filter_key: 'region', value: 'hijacked' }, { onConflict });
  assert.equal(notTheirs?.code, 'permission_denied', JSON.stringify(notTheirs));
  const { data: unchanged } = await prefs();
  assert.deepEqual(unchanged, afterIgnore);

  return 'saved twice, array with columns=, ignoreDuplicates, unknown key, second user';
});
