import { createServer, type Server } from 'node:http';
import { hostForUrl, listenFor } from '../listen.ts';
import type { Telemetry } from './telemetry.ts';

/** What `--metrics HOST:PORT` serves: /metrics (Prometheus text), /healthz and /status (JSON). */
export async function serveMetrics(
  telemetry: Telemetry,
  host: string,
  port: number,
): Promise<{ server: Server; url: string; close: () => Promise<void> }> {
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://metrics').pathname;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD' });
      return res.end();
    }
    if (path === '/metrics') {
      void telemetry.registry.metrics().then(
        (text) => {
          res.writeHead(200, { 'Content-Type': telemetry.registry.contentType, 'Cache-Control': 'no-store' });
          res.end(req.method === 'HEAD' ? undefined : text);
        },
        (error: Error) => {
          res.writeHead(500, { 'Content-Type': 'text/plain' });
          res.end(`metrics failed: ${error.message}\n`);
        },
      );
      return;
    }
    if (path === '/healthz' || path === '/status') {
      const body = path === '/healthz' ? telemetry.health() : telemetry.status();
      // A health check reads the status code: 503 while media does not flow.
      res.writeHead(path === '/healthz' && !body.healthy ? 503 : 200, {
        'Content-Type': 'application/json',
        'Cache-Control': 'no-store',
        'Access-Control-Allow-Origin': '*',
      });
      return res.end(req.method === 'HEAD' ? undefined : `${JSON.stringify(body)}\n`);
    }
    res.writeHead(404, { 'Content-Type': 'text/plain' });
    res.end('not found: /metrics, /healthz and /status are served here\n');
  });
  const address = await listenFor('--metrics', server, host, port);
  const url = `http://${hostForUrl(address.address)}:${address.port}`;
  return {
    server,
    url,
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
