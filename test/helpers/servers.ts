import { mkdir, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';

// Servers the tests and benches start: a free port for any of them, and Debian's nginx as an
// origin for the push tests (one process in the foreground, so the test holds its pid and stops it).

const NGINX = process.env['NGINX'] ?? '/usr/sbin/nginx';

/** A TCP port free on 127.0.0.1 now. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * nginx with its files under `root` (www/ the document root, tmp/, logs/) and `server`, the
 * directives of one server block listening on 127.0.0.1:`port` (`listen` is the caller's, for TLS).
 * Whether it answers yet is the caller's to wait for. (The process comes wrapped: a promise of it
 * would be awaited to its exit.)
 */
export async function runNginx(root: string, server: string): Promise<{ nginx: ResultPromise }> {
  for (const d of ['www', 'tmp', 'logs']) await mkdir(join(root, d), { recursive: true });
  await writeFile(
    join(root, 'nginx.conf'),
    `
pid ${root}/nginx.pid;
error_log ${root}/logs/error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path ${root}/tmp;
  types { text/html html; application/dash+xml mpd; video/mp4 mp4 m4s; }
  server {
${server}
    root ${root}/www;
    location / {
      dav_methods PUT DELETE;
      create_full_put_path on;
      client_max_body_size 16m;
    }
  }
}
`,
  );
  const nginx = execa(
    NGINX,
    [
      '-p',
      root,
      '-e',
      `${root}/logs/error.log`,
      '-c',
      join(root, 'nginx.conf'),
      '-g',
      'daemon off; master_process off;',
    ],
    { reject: false },
  );
  return { nginx };
}
