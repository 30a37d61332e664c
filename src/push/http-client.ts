import { createRequire } from 'node:module';
import type { Client as UndiciClient } from 'undici';

// undici's entry point loads all of undici (fetch, WebSocket, caches, mocks, cookies): ~13 MB of
// resident memory for the life of the process, of which the appliance uses one part, the
// HTTP/1.1 Client with its request API. That part is loaded alone, and given the request API as
// undici's entry point gives it (a later load of the entry point assigns the same function).
const require = createRequire(import.meta.url);
const Dispatcher = require('undici/lib/dispatcher/dispatcher.js') as { prototype: object };
const request = require('undici/lib/api/api-request.js') as unknown;
Object.assign(Dispatcher.prototype, { request });

export const Client = require('undici/lib/dispatcher/client.js') as typeof UndiciClient;
export type Client = UndiciClient;
