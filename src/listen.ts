import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ConfigError } from './errors.ts';

// Listening sockets, for every server the appliance runs (the built-in origin, `appliance
// origin`, metrics): one way to listen and one way to name an address in a URL and a message.

/** A host as it goes in a URL: an IPv6 address in brackets. */
export const hostForUrl = (host: string) => (host.includes(':') ? `[${host}]` : host);

/** Listens, or refuses (exit 2) naming the flag that gave the address. */
export async function listenFor(flag: string, server: Server, host: string, port: number): Promise<AddressInfo> {
  return listen(server, host, port).catch((error: NodeJS.ErrnoException) => {
    throw new ConfigError(
      `${flag} ${hostForUrl(host)}:${port}: cannot listen (${error.code ?? error.message})${error.code === 'EADDRINUSE' ? `; another program uses that port: pick another with ${flag}` : ''}`,
    );
  });
}

/** Listens on host:port; resolves with the address bound (port 0 picks a free one). */
export async function listen(server: Server, host: string, port: number): Promise<AddressInfo> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server.address() as AddressInfo;
}
