import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { ResultPromise } from 'execa';
import { startApplianceOrigin } from '../helpers/run.ts';

const TOKEN = 'restart-test-token';
const dirs: string[] = [];
const children: ResultPromise[] = [];
after(async () => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  await Promise.all(children);
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

async function startOrigin(
  dir: string,
  listen = '127.0.0.1:0',
): Promise<{ child: ResultPromise; base: string; log: () => string }> {
  const started = await startApplianceOrigin(
    ['--listen', listen, '--dir', dir],
    { APPLIANCE_INGEST_TOKEN: TOKEN },
    120_000,
  );
  children.push(started.child);
  return started;
}

const sha = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

/** A chunked PUT, one chunk per piece, a few ms apart; resolves with the status (0: the connection failed). */
function chunkedPut(base: string, path: string, pieces: Uint8Array[]): Promise<number> {
  return new Promise((resolve) => {
    const req = request(
      `${base}/${path}`,
      { method: 'PUT', headers: { Authorization: `Bearer ${TOKEN}`, 'Transfer-Encoding': 'chunked' } },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('error', () => resolve(0));
      },
    );
    req.on('error', () => resolve(0));
    let index = 0;
    const next = () => {
      if (index === pieces.length) return void req.end();
      req.write(pieces[index++]!);
      setTimeout(next, 5);
    };
    next();
  });
}

describe('appliance origin --dir keeps what it acknowledged', { timeout: 120_000 }, () => {
  it('SIGKILLed mid-push and restarted on the same --dir, it serves every segment it acknowledged, byte for byte', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'appliance-origin-'));
    dirs.push(dir);
    const first = await startOrigin(dir);
    const port = new URL(first.base).port;
    const acknowledged = new Map<string, string>();
    let killed = false;
    const pushTrack = async (track: string) => {
      // Segments back to back, as a pusher's track connection sends them, until the origin dies.
      for (let segment = 1; segment <= 400 && !killed; segment++) {
        const path = `live/${track}/seg_${segment}.m4s`;
        const pieces = Array.from({ length: 5 }, (_, i) => new Uint8Array(4096).fill((segment * 7 + i) % 251));
        const status = await chunkedPut(first.base, path, pieces);
        if (status >= 200 && status < 300) acknowledged.set(path, sha(Buffer.concat(pieces)));
      }
    };
    const pushing = Promise.all(['720p', '1080p', 'audio'].map(pushTrack));
    // Killed while uploads are in flight: after some segments were acknowledged.
    for (let i = 0; i < 200 && acknowledged.size < 60; i++) await new Promise((resolve) => setTimeout(resolve, 20));
    first.child.kill('SIGKILL');
    await first.child;
    killed = true;
    await pushing;
    assert.ok(acknowledged.size >= 60, `${acknowledged.size} segments acknowledged before the kill`);

    const second = await startOrigin(dir, `127.0.0.1:${port}`);
    const missing: string[] = [];
    for (const [path, hash] of acknowledged) {
      const response = await fetch(`${second.base}/${path}`);
      if (response.status !== 200 || sha(new Uint8Array(await response.arrayBuffer())) !== hash)
        missing.push(`${path}: ${response.status}`);
    }
    assert.deepEqual(missing, [], 'every acknowledged segment is served after the restart');
    const left = (await readdir(dir, { recursive: true })).filter((name) => String(name).includes('.tmp-'));
    assert.deepEqual(left, [], 'no temporary file is left behind');
    assert.match(second.log(), /"restartKeeps":"every acknowledged upload still in the window \(\d+ objects loaded/);
    second.child.kill('SIGTERM');
    await second.child;
  });

  it('concurrent uploads of one path leave one whole upload on disk, the one it serves; a 250-character name is kept, one too long for the disk is a 5xx', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'appliance-origin-'));
    dirs.push(dir);
    const origin = await startOrigin(dir);
    const bodies = Array.from({ length: 100 }, (_, i) => new Uint8Array(32 * 1024).fill(i));
    for (let round = 0; round < 5; round++) {
      const statuses = await Promise.all(
        bodies.map((body) =>
          chunkedPut(origin.base, 'race/seg_1.m4s', [body.subarray(0, 16384), body.subarray(16384)]),
        ),
      );
      assert.ok(
        statuses.every((s) => (s >= 200 && s < 300) || s === 409),
        `statuses ${[...new Set(statuses)]}`,
      );
      const onDisk = await readFile(join(dir, 'race', 'seg_1.m4s'));
      const served = new Uint8Array(await (await fetch(`${origin.base}/race/seg_1.m4s`)).arrayBuffer());
      assert.ok(
        bodies.some((b) => Buffer.compare(b, onDisk) === 0),
        `round ${round}: the file is one whole upload`,
      );
      assert.equal(sha(onDisk), sha(served), `round ${round}: the file is the upload it serves`);
    }
    // 250 characters fit the disk (the temporary name is short); 300 do not, and are not acknowledged.
    const fits = `${'n'.repeat(246)}.m4s`;
    assert.equal(await chunkedPut(origin.base, `long/${fits}`, [new Uint8Array(10)]), 201);
    assert.equal((await readFile(join(dir, 'long', fits))).length, 10);
    const status = await chunkedPut(origin.base, `long/${'n'.repeat(296)}.m4s`, [new Uint8Array(10)]);
    assert.ok(status >= 500, `a name the disk refuses: ${status}`);
    origin.child.kill('SIGTERM');
    await origin.child;
  });
});
