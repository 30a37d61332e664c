import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ResultPromise } from 'execa';
import { startApplianceOrigin } from '../helpers/run.ts';

const ADMIN = 'tenant-test-admin-token';
const ALPHA = 'alpha-tenant-token-0001';
const BETA = 'beta-tenant-token-00002';
let origin: ResultPromise;
let base: string;
let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'appliance-tenants-'));
  const tokens = join(dir, 'tokens');
  await writeFile(tokens, `# tenants\n/alpha/ ${ALPHA}\nbeta ${BETA}\n`);
  ({ child: origin, base } = await startApplianceOrigin(
    ['--listen', '127.0.0.1:0', '--tokens', tokens, '--max-store', '300000', '--tsb', '1', '--hold', '1'],
    { APPLIANCE_INGEST_TOKEN: ADMIN },
    120_000,
  ));
});
after(async () => {
  if (origin.exitCode === null) origin.kill('SIGTERM');
  await origin;
  await rm(dir, { recursive: true, force: true });
});

const send = (method: string, path: string, token: string, body?: Uint8Array | string) =>
  fetch(`${base}/${path}`, {
    method,
    headers: { Authorization: `Bearer ${token}` },
    ...(body === undefined ? {} : { body }),
  }).then((r) => r.status);

describe('appliance origin keeps tenants apart', { timeout: 60_000 }, () => {
  it('a --tokens token writes and deletes only under its prefix; the single token everywhere', async () => {
    assert.equal(await send('PUT', 'alpha/live.mpd', ALPHA, '<MPD/>'), 201);
    assert.equal(await send('PUT', 'beta/live.mpd', ALPHA, '<MPD/>'), 403, 'alpha may not write beta');
    assert.equal(
      await send('PUT', 'alphabet/live.mpd', ALPHA, '<MPD/>'),
      403,
      'a prefix is a directory, not a string prefix',
    );
    assert.equal(await send('PUT', 'beta/live.mpd', BETA, '<MPD/>'), 201);
    assert.equal(await send('DELETE', 'beta/live.mpd', ALPHA), 403, 'nor delete there');
    assert.equal(await send('PUT', 'beta/live.mpd', 'not-a-token-at-all-xx', '<MPD/>'), 403);
    assert.equal(await send('PUT', 'gamma/live.mpd', ADMIN, '<MPD/>'), 201, 'the single token still writes anywhere');
    assert.equal(await send('DELETE', 'gamma/live.mpd', ADMIN), 204);
    assert.equal((await fetch(`${base}/beta/live.mpd`)).status, 200, 'beta kept its manifest');
  });

  it('refuses uploads past --max-store with 507, and takes them again once there is room', async () => {
    const big = new Uint8Array(120_000).fill(1);
    assert.equal(await send('PUT', 'alpha/v/seg_1.m4s', ALPHA, big), 201);
    assert.equal(await send('PUT', 'alpha/v/seg_2.m4s', ALPHA, big), 201);
    assert.equal(await send('PUT', 'alpha/v/seg_3.m4s', ALPHA, big), 507, 'past 300000 bytes');
    assert.equal(await send('PUT', 'alpha/v/seg_2.m4s', ALPHA, big), 200, 'replacing an object counts it once');
    assert.equal(await send('DELETE', 'alpha/v/seg_1.m4s', ALPHA), 204);
    assert.equal(await send('PUT', 'alpha/v/seg_3.m4s', ALPHA, big), 201, 'room again');
  });

  it('forgets a whole stream, manifests included, once nothing was uploaded under it for tsb + hold', async () => {
    // beta gets nothing more; alpha keeps uploading.
    let alive = true;
    const keepAlpha = (async () => {
      for (let i = 0; alive && i < 100; i++) {
        assert.ok([201, 204].includes(await send('PUT', 'alpha/live.mpd', ALPHA, `<MPD n="${i}"/>`)));
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    })();
    let beta = 200;
    for (let i = 0; i < 40 && beta === 200; i++) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      beta = (await fetch(`${base}/beta/live.mpd`)).status;
    }
    alive = false;
    await keepAlpha;
    assert.equal(beta, 404, 'the idle stream is gone');
    assert.equal((await fetch(`${base}/alpha/live.mpd`)).status, 200, 'the live one stays');
  });
});
