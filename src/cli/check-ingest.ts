import { Client } from '../push/http-client.ts';
import { type ClientCertificate, tlsConnectOptions } from '../push/client-certificate.ts';
import { safeUrl } from '../push/upload-outcome.ts';
import { packageVersion, userAgent } from '../version.ts';
import type { OriginReport } from './check.ts';
import type { PushDestination } from './outputs.ts';

/**
 * Pure: what an answer to the empty request that opens a CMAF ingest session says (DASH-IF ingest:
 * 403 refused credentials, 404 no such publishing point, 400/412/415 a receiver that wants media,
 * which it only judges once it let the request in).
 */
export function ingestAnswer(status: number): Pick<OriginReport, 'credentials' | 'problem'> {
  if (status === 401 || status === 403) return { credentials: 'refused', problem: undefined };
  if (status < 300 || status === 400 || status === 405 || status === 412 || status === 415)
    return { credentials: 'accepted', problem: undefined };
  if (status === 404)
    return { credentials: 'unknown', problem: 'no publishing point at this URL (404): check its path and the channel' };
  return { credentials: 'unknown', problem: `the receiver answered HTTP ${status}` };
}

/**
 * Probes a CMAF ingest receiver the way a session starts: an empty request (its method) to the
 * publishing point, which a receiver answers without storing anything. Never throws.
 */
export async function probeIngestPoint(
  given: URL,
  destination: PushDestination,
  headers: Record<string, string>,
  ca: string[] | undefined,
  client?: ClientCertificate | undefined,
): Promise<OriginReport> {
  const report: OriginReport = {
    url: safeUrl(given),
    reachable: false,
    uploadStatus: undefined,
    credentials: 'unknown',
    originProfile: destination.origin.profile,
    deleteStatus: undefined,
    server: undefined,
    rttMs: undefined,
    problem: undefined,
  };
  const connection = new Client(given.origin, {
    connect: { timeout: 5000, ...tlsConnectOptions(given.origin, ca, client) },
    headersTimeout: 10_000,
    bodyTimeout: 10_000,
  });
  try {
    const started = performance.now();
    const answer = await connection.request({
      path: given.pathname + given.search,
      method: destination.method,
      headers: {
        ...headers,
        'user-agent': userAgent(await packageVersion()),
        'dash-if-ingest': '1.1',
        'content-length': '0',
      },
    });
    await answer.body.dump();
    report.rttMs = Math.round((performance.now() - started) * 10) / 10;
    report.reachable = true;
    report.server = [answer.headers['server']].flat()[0];
    report.uploadStatus = answer.statusCode;
    Object.assign(report, ingestAnswer(answer.statusCode));
  } catch (error) {
    const code =
      (error as { code?: string; cause?: { code?: string } }).cause?.code ?? (error as { code?: string }).code;
    report.problem = `${code ?? (error as Error).message}${code && /CERT|SELF_SIGNED|UNABLE_TO/.test(code) ? ": give the origin's CA with --ca FILE" : ''}`;
  } finally {
    await connection.destroy();
  }
  return report;
}
