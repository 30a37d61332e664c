import { parse as parseYaml, YAMLParseError } from 'yaml';
import { ConfigError } from '../errors.ts';

/** Pure: YAML text → its document, or a ConfigError naming the file, line and column. */
export function parseYamlFile(text: string, file: string): unknown {
  try {
    // A handful of aliases is all a configuration needs; many is an alias bomb (exponential expansion).
    return parseYaml(text, { maxAliasCount: 100 });
  } catch (error) {
    if (error instanceof YAMLParseError) {
      const where = error.linePos?.[0] ? ` at line ${error.linePos[0].line}, column ${error.linePos[0].col}` : '';
      throw new ConfigError(`${file}: not valid YAML${where}: ${error.message.split('\n')[0]}`);
    }
    // The parser refuses an alias bomb (and anything else it cannot take) with a plain error.
    throw new ConfigError(`${file}: cannot be read as a configuration: ${(error as Error).message.split('\n')[0]}`);
  }
}
