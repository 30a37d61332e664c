// TLS client certificates for push outputs (--client-cert, --client-key): origins that admit an
// encoder by its certificate (nginx's ssl_verify_client, CMAF ingest's TLS authentication).
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { ConfigError } from '../errors.ts';

/** The certificate (chain) and its key, PEM, as the TLS connect options take them. */
export interface ClientCertificate {
  cert: string;
  key: string;
  /** For messages (never the key): the certificate's subject and when it expires. */
  subject: string;
  validTo: string;
}

/**
 * Pure: the TLS part of the connect options for `origin` (e.g. "https://host:443"): the trusted
 * CAs and the client certificate, for https only. Every client of a push or a check builds its
 * options with this, so what is presented, and where, is decided in one place.
 */
export function tlsConnectOptions(
  origin: string,
  ca: string[] | undefined,
  certificate: { cert: string; key: string } | undefined,
): { ca?: string[]; cert?: string; key?: string } {
  if (!origin.startsWith('https:')) return {};
  return { ...(ca ? { ca } : {}), ...(certificate ? { cert: certificate.cert, key: certificate.key } : {}) };
}

/** Files larger than this are no certificate or key (a chain of a few certificates is a few KB). */
const MAX_PEM_BYTES = 256 * 1024;

async function readPem(flag: string, file: string): Promise<string> {
  const size = await stat(file).then(
    (s) => s.size,
    (e: NodeJS.ErrnoException) => {
      throw new ConfigError(`${flag} ${file}: cannot read it (${e.code ?? e.message})`);
    },
  );
  if (size > MAX_PEM_BYTES) throw new ConfigError(`${flag} ${file}: ${size} bytes is no PEM file (at most 256 KiB)`);
  return readFile(file, 'utf8').catch((e: NodeJS.ErrnoException) => {
    throw new ConfigError(`${flag} ${file}: cannot read it (${e.code ?? e.message})`);
  });
}

/**
 * Pure: the certificate and key texts → what a TLS connection presents, or a ConfigError naming
 * the file and what would be accepted. The key is checked against the certificate here, so a
 * mismatch is an error at start, not a refused handshake per upload. Nothing of the key is echoed.
 */
export function parseClientCertificate(
  certText: string,
  keyText: string,
  files: { cert: string; key: string },
): ClientCertificate {
  let certificate: X509Certificate;
  try {
    if (!/-----BEGIN CERTIFICATE-----/.test(certText)) throw new Error('no "-----BEGIN CERTIFICATE-----" block');
    certificate = new X509Certificate(certText);
  } catch (error) {
    throw new ConfigError(
      `--client-cert ${files.cert}: not a PEM certificate (${(error as Error).message}); expected "-----BEGIN CERTIFICATE-----", the client's certificate first, then any intermediates`,
    );
  }
  let key: KeyObject;
  try {
    if (/ENCRYPTED/.test(keyText)) throw new Error('it is encrypted');
    key = createPrivateKey({ key: keyText, format: 'pem' });
  } catch (error) {
    const encrypted = /encrypted/i.test((error as Error).message);
    throw new ConfigError(
      `--client-key ${files.key}: ${encrypted ? 'an encrypted key (a service cannot type its passphrase): decrypt it with "openssl pkey -in KEY -out KEY.plain" and keep that file readable by the service only' : 'not a PEM private key (expected "-----BEGIN PRIVATE KEY-----" or an RSA/EC key block)'}`,
    );
  }
  if (!certificate.checkPrivateKey(key))
    throw new ConfigError(
      `--client-key ${files.key} is not the key of --client-cert ${files.cert} (${certificate.subject.replace(/\n/g, ', ')})`,
    );
  return {
    cert: certText,
    key: keyText,
    subject: certificate.subject.replace(/\n/g, ', '),
    validTo: new Date(certificate.validTo).toISOString(),
  };
}

/** Both flags or neither; read, checked, and a warning when the key is readable by others or the certificate expired. */
export async function readClientCertificate(
  certFile: string | undefined,
  keyFile: string | undefined,
): Promise<{ certificate: ClientCertificate | undefined; warnings: string[] }> {
  if (certFile === undefined && keyFile === undefined) return { certificate: undefined, warnings: [] };
  if (certFile === undefined || keyFile === undefined)
    throw new ConfigError(
      `${certFile === undefined ? '--client-key' : '--client-cert'} without ${certFile === undefined ? '--client-cert' : '--client-key'}: a client certificate needs both`,
    );
  const certificate = parseClientCertificate(
    await readPem('--client-cert', certFile),
    await readPem('--client-key', keyFile),
    {
      cert: certFile,
      key: keyFile,
    },
  );
  const warnings: string[] = [];
  const mode = (await stat(keyFile)).mode;
  if (process.platform !== 'win32' && mode & 0o077)
    warnings.push(`--client-key ${keyFile} is readable by others (mode ${(mode & 0o777).toString(8)}): chmod 600 it`);
  if (Date.parse(certificate.validTo) < Date.now())
    warnings.push(`--client-cert ${certFile} expired on ${certificate.validTo}: origins will refuse it`);
  return { certificate, warnings };
}
