import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseYamlFile } from '../../src/config/yaml-file.ts';
import { ConfigError } from '../../src/errors.ts';

describe('YAML files', () => {
  it('refuse an alias bomb with an error naming the file, at once', () => {
    const levels = ['a: &a ["x","x","x","x","x","x","x","x","x"]'];
    for (let i = 1; i < 10; i++)
      levels.push(
        `${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(9)
          .fill(`*${String.fromCharCode(96 + i)}`)
          .join(',')}]`,
      );
    const started = performance.now();
    assert.throws(
      () => parseYamlFile(levels.join('\n'), '/etc/appliance/config.yaml'),
      (e: unknown) =>
        e instanceof ConfigError &&
        e.message.startsWith('/etc/appliance/config.yaml: cannot be read as a configuration'),
    );
    assert.ok(performance.now() - started < 2000);
    assert.deepEqual(parseYamlFile('base: &b {x: 1}\nuse: *b\n', 'ok.yaml'), { base: { x: 1 }, use: { x: 1 } });
  });
});
