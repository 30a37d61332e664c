import { Client } from '../push/http-client.ts';
import { type ClientCertificate, tlsConnectOptions } from '../push/client-certificate.ts';
import { safeUrl } from '../push/upload-outcome.ts';
import { packageVersion, userAgent } from '../version.ts';
import { connectionProblem, type OriginReport } from './check.ts';
import type { PushDestination } from './outputs.ts';

/**
 * Pure: what an answer to the empty request that opens a CMAF ingest session says (DASH-IF ingest:
 * 403 refused credentials, 404 no such publishing point, 412/415 a receiver that let the request
 * in and wants a header). A 400 says nothing certain (nginx answers it to a missing client
 * certificate); a 405, that this URL takes no uploads by that method.
 */
export function ingestAnswer(
  status: number,
  method: string,
  certificateGiven: boolean,
): Pick<OriginReport, 'credentials' | 'problem'> {
  if (status === 401 || status === 403) return { credentials: 'refused', problem: undefined };
  if (status < 300 || status === 412 || status === 415) return { credentials: 'accepted', problem: undefined };
  if (status === 404)
    return { credentials: 'unknown', problem: 'no publishing point at this URL (404): check its path and the channel' };
  if (status === 405)
    return {
      credentials: 'unknown',
      problem: `this URL takes no ${method} (405): is it the publishing point, and does the receiver take ${method}? (--method)`,
    };
  if (status === 400)
    return {
      credentials: 'unknown',
      problem: `the receiver refused an empty request (400)${certificateGiven ? '' : '; one that admits encoders by TLS client certificate (nginx answers 400 without one) wants --client-cert and --client-key'}`,
    };
  return { credentials: 'unknown', problem: `the receiver answered HTTP ${status}` };
}

/**
 * Probes a CMAF ingest receiver the way a session starts: an empty request (its method) to the
 * publishing point, which a receiver answers without storing anything. Never throws.
 */
export async function probeIngestPoint(
  destination: PushDestination,
  headers: Record<string, string>,
  ca: string[] | undefined,
  client?: ClientCertificate | undefined,
): Promise<OriginReport> {
  // The publishing point the pushes go into (a URL naming the MPD is probed at its directory, so
  // the empty request stores nothing in its place).
  const given = destination.url;
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
    Object.assign(report, ingestAnswer(answer.statusCode, destination.method, client !== undefined));
  } catch (error) {
    report.problem = connectionProblem(error);
  } finally {
    await connection.destroy();
  }
  return report;
}
