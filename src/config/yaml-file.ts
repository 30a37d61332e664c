import { parse as parseYaml, YAMLParseError } from 'yaml';
import { ConfigError } from '../errors.ts';

/** Pure: YAML text → its document, or a ConfigError naming the file, line and column. */
export function parseYamlFile(text: string, file: string): unknown {
  try {
    return parseYaml(text);
  } catch (error) {
    if (error instanceof YAMLParseError) {
      const where = error.linePos?.[0] ? ` at line ${error.linePos[0].line}, column ${error.linePos[0].col}` : '';
      throw new ConfigError(`${file}: not valid YAML${where}: ${error.message.split('\n')[0]}`);
    }
    throw error;
  }
}
