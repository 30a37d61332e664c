import assert from 'node:assert/strict';
import { chmod, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa, type ResultPromise } from 'execa';
import { LIGHT_PAIR, writeLightProfile } from '../helpers/light-profile.ts';
import { logLines, startAppliance } from '../helpers/run.ts';
import { freePort, runNginx } from '../helpers/servers.ts';

// An origin that admits encoders by their TLS client certificate: Debian's nginx with
// ssl_verify_client on, a CA of the test's own, a certificate it signed for the encoder, and one
// it did not.
const openssl = (args: string[]) => execa('openssl', args);

/** A key and a certificate for `cn`, signed by the CA in `dir` (or self-signed with `selfSigned`). */
async function issue(dir: string, name: string, cn: string, options: { selfSigned?: boolean; ip?: boolean } = {}) {
  const key = join(dir, `${name}.key`);
  const cert = join(dir, `${name}.pem`);
  await openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', key]);
  if (options.selfSigned) {
    await openssl(['req', '-x509', '-key', key, '-days', '1', '-subj', `/CN=${cn}`, '-out', cert]);
  } else {
    const csr = join(dir, `${name}.csr`);
    await openssl(['req', '-new', '-key', key, '-subj', `/CN=${cn}`, '-out', csr]);
    const extensions = join(dir, `${name}.ext`);
    await writeFile(extensions, options.ip ? 'subjectAltName=IP:127.0.0.1\n' : 'extendedKeyUsage=clientAuth\n');
    await openssl(
      ['x509', '-req', '-in', csr, '-CA', join(dir, 'ca.pem'), '-CAkey', join(dir, 'ca.key')].concat([
        '-CAcreateserial',
        '-days',
        '1',
        '-extfile',
        extensions,
        '-out',
        cert,
      ]),
    );
  }
  await chmod(key, 0o600);
  return { key, cert };
}

describe('push to an origin that admits encoders by TLS client certificate (nginx, ssl_verify_client on)', {
  timeout: 120_000,
}, () => {
  let root = '';
  let nginx: ResultPromise | undefined;
  let base = '';
  let client: { key: string; cert: string };
  let stranger: { key: string; cert: string };
  let serverCertificate: { key: string; cert: string };
  let profile = '';

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'appliance-mtls-'));
    await openssl(
      ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=test CA'].concat([
        '-keyout',
        join(root, 'ca.key'),
        '-out',
        join(root, 'ca.pem'),
      ]),
    );
    const server = await issue(root, 'server', 'localhost', { ip: true });
    client = await issue(root, 'encoder', 'encoder-1');
    stranger = await issue(root, 'stranger', 'encoder-x', { selfSigned: true });
    const port = await freePort();
    ({ nginx } = await runNginx(
      root,
      [
        `    listen 127.0.0.1:${port} ssl;`,
        `    ssl_certificate ${server.cert};`,
        `    ssl_certificate_key ${server.key};`,
        `    ssl_client_certificate ${root}/ca.pem;`,
        '    ssl_verify_client on;',
      ].join('\n'),
    ));
    serverCertificate = server;
    base = `https://127.0.0.1:${port}`;
    for (let i = 0; i < 50; i++) {
      const up = await execa('openssl', ['s_client', '-connect', `127.0.0.1:${port}`], { input: '', reject: false });
      if (up.exitCode === 0 || /CONNECTED/.test(String(up.stdout))) break;
      await sleep(100);
    }
    profile = await writeLightProfile(root, { renditions: LIGHT_PAIR });
  });

  after(async () => {
    if (nginx?.pid) process.kill(nginx.pid, 'SIGTERM');
    await nginx;
    await rm(root, { recursive: true, force: true });
  });

  const push = (extra: string[], path: string) =>
    startAppliance(process.execPath, [
      'start',
      '--profile',
      profile,
      '--duration',
      '4',
      '--origin-profile',
      'generic',
      '--ca',
      join(root, 'ca.pem'),
      ...extra,
      '--output',
      `${base}/${path}/live.mpd`,
    ]);

  it('with the certificate the CA signed: every segment lands; the key never shows', async () => {
    const run = await push(['--client-cert', client.cert, '--client-key', client.key], 'admitted');
    assert.equal(run.exitCode, 0, String(run.stderr).slice(-2000));
    const landed = await readdir(join(root, 'www', 'admitted', LIGHT_PAIR[0]!.id));
    assert.ok(landed.includes('init.mp4') && landed.filter((n) => n.endsWith('.m4s')).length >= 3, landed.join());
    const summary = logLines(String(run.stderr)).find((l) => l['msg'] === 'push')!;
    assert.equal(
      Object.values((summary['dropped'] as Record<string, number>) ?? {}).reduce((a, b) => a + b, 0),
      0,
    );
    assert.doesNotMatch(String(run.stderr), /PRIVATE KEY/);
  });

  it('a redirect to another origin is followed without the certificate', async () => {
    // Two https origins that ask for a client certificate and record who presented one: the
    // configured one redirects segments (307) to the other.
    const tls = { key: await readFile(serverCertificate.key), cert: await readFile(serverCertificate.cert) };
    const seen: { server: 'configured' | 'other'; path: string; certificate: boolean }[] = [];
    const listen = async (
      server: 'configured' | 'other',
      answer: (req: IncomingMessage, res: ServerResponse) => void,
    ) => {
      const https = createHttpsServer({ ...tls, requestCert: true, rejectUnauthorized: false }, (req, res) => {
        const peer = (req.socket as TLSSocket).getPeerCertificate();
        seen.push({ server, path: req.url ?? '', certificate: Boolean(peer?.subject) });
        req.resume();
        req.on('end', () => answer(req, res));
      });
      await new Promise<void>((resolve) => https.listen(0, '127.0.0.1', resolve));
      return { https, base: `https://127.0.0.1:${(https.address() as AddressInfo).port}` };
    };
    const other = await listen('other', (_req, res) => res.writeHead(201).end());
    const configured = await listen('configured', (req, res) =>
      req.url?.endsWith('.m4s')
        ? res.writeHead(307, { Location: `${other.base}${req.url}` }).end()
        : res.writeHead(201).end(),
    );
    try {
      const run = await startAppliance(process.execPath, [
        'start',
        '--profile',
        profile,
        '--duration',
        '3',
        '--origin-profile',
        'generic',
        '--ca',
        join(root, 'ca.pem'),
        '--client-cert',
        client.cert,
        '--client-key',
        client.key,
        '--output',
        `${configured.base}/live/live.mpd`,
      ]);
      assert.equal(run.exitCode, 0, String(run.stderr).slice(-2000));
      const at = (server: string) => seen.filter((s) => s.server === server);
      assert.ok(at('other').length >= 1, 'the redirect was followed');
      assert.ok(
        at('configured').every((s) => s.certificate),
        'the configured origin gets the certificate',
      );
      assert.deepEqual(
        at('other').filter((s) => s.certificate),
        [],
        'the other origin never does',
      );
    } finally {
      for (const { https } of [configured, other]) {
        https.closeAllConnections();
        await new Promise((resolve) => https.close(resolve));
      }
    }
  });

  it('appliance check probes the origin with the certificate, and tells when one is missing', async () => {
    const check = (extra: string[]) =>
      startAppliance(process.execPath, [
        'check',
        '--json',
        '--no-cpu',
        '--ca',
        join(root, 'ca.pem'),
        ...extra,
        '--output',
        `${base}/checked/live.mpd`,
      ]);
    const admitted = await check(['--client-cert', client.cert, '--client-key', client.key]);
    const origin = (JSON.parse(String(admitted.stdout)) as { origins: Record<string, unknown>[] }).origins[0]!;
    assert.equal(origin['credentials'], 'accepted', JSON.stringify(origin));
    assert.equal(origin['originProfile'], 'generic');
    const anonymous = await check([]);
    assert.equal(anonymous.exitCode, 1, 'a start would fail');
    const refused = (JSON.parse(String(anonymous.stdout)) as { origins: Record<string, unknown>[] }).origins[0]!;
    assert.notEqual(refused['credentials'], 'accepted', JSON.stringify(refused));
  });

  it('without it, or with one the CA did not sign: the origin refuses, the output stops, nothing lands', async () => {
    for (const [extra, path] of [
      [[], 'anonymous'],
      [['--client-cert', stranger.cert, '--client-key', stranger.key], 'stranger'],
    ] as const) {
      const run = await push([...extra], path);
      assert.notEqual(run.exitCode, 0, `${path}: ${String(run.stderr).slice(-1000)}`);
      assert.match(String(run.stderr), /the origin refused the init segment/, path);
      assert.equal(/wants --client-cert and --client-key/.test(String(run.stderr)), path === 'anonymous', path);
      assert.deepEqual(await readdir(join(root, 'www', path)).catch(() => []), [], `${path}: nothing stored`);
    }
  });

  it("a key that is not the certificate's, or one flag alone: exit 2 at start, naming the files", async () => {
    const mismatch = await push(['--client-cert', client.cert, '--client-key', stranger.key], 'mismatch');
    assert.equal(mismatch.exitCode, 2);
    assert.match(
      String(mismatch.stderr),
      /--client-key .*stranger\.key is not the key of --client-cert .*encoder\.pem \(CN=encoder-1\)/,
    );
    const alone = await push(['--client-cert', client.cert], 'alone');
    assert.equal(alone.exitCode, 2);
    assert.match(String(alone.stderr), /--client-cert without --client-key: a client certificate needs both/);
  });
});
