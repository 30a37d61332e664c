import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseClientCertificate, readClientCertificate, tlsConnectOptions } from '../../src/push/client-certificate.ts';

const files = { cert: '/etc/appliance/client.pem', key: '/etc/appliance/client.key' };

describe('TLS client certificates: every bad file is an error naming it, the key never echoed', () => {
  it('refuses what is not a PEM certificate', () => {
    for (const text of ['', 'hello', '-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n'])
      assert.throws(
        () => parseClientCertificate(text, 'whatever', files),
        /--client-cert \/etc\/appliance\/client\.pem: not a PEM certificate .*expected "-----BEGIN CERTIFICATE-----"/,
      );
  });

  it('refuses an encrypted key (a service cannot type its passphrase) and what is no key, without echoing it', async () => {
    // A certificate of the test's own: the key is parsed only after a certificate that parses.
    const { execa } = await import('execa');
    const made = await execa(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=t',
        '-keyout',
        '-',
        '-out',
        '-',
      ],
      { reject: false },
    );
    const pem = String(made.stdout);
    const cert = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/.exec(pem)![0];
    const key = /-----BEGIN PRIVATE KEY-----[\s\S]+?-----END PRIVATE KEY-----\n?/.exec(pem)![0];
    assert.match(parseClientCertificate(cert, key, files).subject, /CN=t/);
    const secret = 'SECRET-KEY-MATERIAL';
    assert.throws(
      () =>
        parseClientCertificate(
          cert,
          `-----BEGIN ENCRYPTED PRIVATE KEY-----\n${secret}\n-----END ENCRYPTED PRIVATE KEY-----\n`,
          files,
        ),
      (error: Error) => /an encrypted key .*openssl pkey/.test(error.message) && !error.message.includes(secret),
    );
    assert.throws(
      () => parseClientCertificate(cert, secret, files),
      (error: Error) =>
        /--client-key \/etc\/appliance\/client\.key: not a PEM private key/.test(error.message) &&
        !error.message.includes(secret),
    );
  });

  it('wants both files or neither, and names an unreadable one', async () => {
    assert.deepEqual(await readClientCertificate(undefined, undefined), { certificate: undefined, warnings: [] });
    await assert.rejects(readClientCertificate(undefined, '/k'), /--client-key without --client-cert/);
    await assert.rejects(
      readClientCertificate('/nonexistent/c.pem', '/nonexistent/k.pem'),
      /--client-cert \/nonexistent\/c\.pem: cannot read it \(ENOENT\)/,
    );
  });

  it('is presented, with the CAs, over TLS only', () => {
    const certificate = { cert: 'C', key: 'K' };
    assert.deepEqual(tlsConnectOptions('https://o:443', ['CA'], certificate), { ca: ['CA'], cert: 'C', key: 'K' });
    assert.deepEqual(tlsConnectOptions('https://o:443', undefined, undefined), {});
    assert.deepEqual(tlsConnectOptions('http://o:80', ['CA'], certificate), {}, 'never over cleartext');
  });
});
