import { readFile } from 'node:fs/promises';

/** The appliance's version, from its package.json. */
export async function packageVersion(): Promise<string> {
  const text = await readFile(new URL('../package.json', import.meta.url), 'utf8');
  return (JSON.parse(text) as { version: string }).version;
}

/** What uploads say they are (the ingest spec asks sources to identify themselves). */
export const userAgent = (version: string) =>
  `appliance/${version} (node ${process.version}; ${process.platform}-${process.arch})`;
