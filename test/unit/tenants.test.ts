import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { authorize, parseTokenGrants } from '../../src/origin/tenants.ts';

describe('ingest tokens per path prefix', () => {
  it('parses "PATH-PREFIX TOKEN" lines and names the line of a problem', () => {
    assert.deepEqual(parseTokenGrants('# c\n\n/a/ aaaaaaaaaaaaaaaa\nb/c bbbbbbbbbbbbbbbb\n'), [
      { prefix: 'a/', token: 'aaaaaaaaaaaaaaaa' },
      { prefix: 'b/c/', token: 'bbbbbbbbbbbbbbbb' },
    ]);
    assert.deepEqual(parseTokenGrants('/a/ short'), { line: 1, problem: 'the token is shorter than 16 characters' });
    assert.equal((parseTokenGrants('x\n/../b aaaaaaaaaaaaaaaa') as { line: number }).line, 1);
    assert.match((parseTokenGrants('/a/../b aaaaaaaaaaaaaaaa') as { problem: string }).problem, /not a path prefix/);
    assert.equal((parseTokenGrants('# nothing') as { line: number }).line, 0);
  });

  it('authorizes a token under its prefixes only', () => {
    const grants = [
      { prefix: 'a/', token: 'aaaaaaaaaaaaaaaa' },
      { prefix: '', token: 'root-token-xxxxxx' },
    ];
    assert.equal(authorize(grants, undefined, 'a/x'), 'missing');
    assert.equal(authorize(grants, 'Bearer nope', 'a/x'), 'wrong');
    assert.equal(authorize(grants, 'Bearer aaaaaaaaaaaaaaaa', 'a/x'), 'ok');
    assert.equal(authorize(grants, 'Bearer aaaaaaaaaaaaaaaa', 'ab/x'), 'outside');
    assert.equal(authorize(grants, 'bearer root-token-xxxxxx', 'ab/x'), 'ok');
  });
});
