import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parseYamlFile } from '../config/yaml-file.ts';
import { ConfigError } from '../errors.ts';

// `appliance start --config FILE`: the service's settings in one YAML file whose keys are the
// start options' flag names (`source: device`, `output: [https://…]`, `metrics: 127.0.0.1:9464`).
// The command line wins over the file, key by key.

export type OptionValues = Record<string, string | boolean | string[]>;
export type OptionSpecs = Readonly<
  Record<string, { readonly type: 'string' | 'boolean'; readonly multiple?: boolean }>
>;

/** Options that belong to one invocation, not to a configuration. */
const NOT_IN_FILE = new Set(['config', 'help', 'dry-run', 'no-dual', 'no-retry-devices']);
/** Files named in the configuration: a relative path is taken from the configuration's directory. */
const PATH_KEYS = new Set(['header-file', 'ca', 'state-dir', 'ffmpeg']);
const SECRET_KEY = /token|password|passphrase|secret|authorization|credential/i;

const isProfilePath = (value: string) => /[/\\]|\.ya?ml$/.test(value);

/** Pure: the YAML of a configuration file → option values as the command line would give them. */
export function parseConfigFile(text: string, file: string, specs: OptionSpecs): OptionValues {
  const document = parseYamlFile(text, file);
  if (document === null || document === undefined) return {};
  if (typeof document !== 'object' || Array.isArray(document))
    throw new ConfigError(
      `${file}: expected a mapping of start options (e.g. "source: device"), found ${Array.isArray(document) ? 'a list' : typeof document}`,
    );
  const accepted = Object.keys(specs).filter((k) => !NOT_IN_FILE.has(k));
  const values: OptionValues = {};
  const base = dirname(resolve(file));
  for (const [key, raw] of Object.entries(document)) {
    if (SECRET_KEY.test(key)) {
      throw new ConfigError(
        `${file}: "${key}": secrets do not go in the configuration file; put APPLIANCE_PUSH_TOKEN (or APPLIANCE_PUSH_USER and APPLIANCE_PUSH_PASSWORD, APPLIANCE_SRT_PASSPHRASE) in the service's EnvironmentFile, or headers in a file named by header-file`,
      );
    }
    const spec = specs[key];
    if (!spec || NOT_IN_FILE.has(key))
      throw new ConfigError(`${file}: unknown key "${key}"; accepted: ${accepted.join(', ')}`);
    const scalar = (value: unknown, at: string): string | boolean => {
      if (spec.type === 'boolean') {
        if (typeof value !== 'boolean')
          throw new ConfigError(`${file}: ${at}: expected true or false, found ${JSON.stringify(value)}`);
        return value;
      }
      if (typeof value !== 'string' && typeof value !== 'number')
        throw new ConfigError(`${file}: ${at}: expected a text or a number, found ${JSON.stringify(value)}`);
      const text = String(value);
      return PATH_KEYS.has(key) || (key === 'profile' && isProfilePath(text))
        ? isAbsolute(text)
          ? text
          : resolve(base, text)
        : text;
    };
    if (spec.multiple) {
      const list = Array.isArray(raw) ? raw : [raw];
      values[key] = list.map((item, i) => String(scalar(item, Array.isArray(raw) ? `${key}[${i}]` : key)));
    } else {
      if (Array.isArray(raw)) throw new ConfigError(`${file}: ${key}: takes one value, found a list`);
      values[key] = scalar(raw, key);
    }
  }
  return values;
}

export async function readConfigFile(file: string, specs: OptionSpecs): Promise<OptionValues> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new ConfigError(
      `--config ${file}: cannot read it (${code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied: the service user must be able to read it' : String(code ?? error)})`,
    );
  }
  return parseConfigFile(text, file, specs);
}
