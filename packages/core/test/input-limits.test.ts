/** Bounded input files and base-model identities: what refuses /dev/zero, a gzip bomb, or another model's adapter. */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BaseModelIdentity, baseModelDifference, InputFileError, readInputFile } from '../src/node.js';

let dir = '';
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sharelora-input-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** The error code readInputFile fails with. */
const code = (p: Promise<unknown>) =>
  p.then(
    () => 'no error',
    (e) => (e instanceof InputFileError ? e.code : String(e)),
  );

describe('readInputFile', () => {
  it('reads and gunzips within the bound', async () => {
    await writeFile(join(dir, 'a.txt.gz'), gzipSync('hello'));
    expect((await readInputFile(join(dir, 'a.txt.gz'))).toString()).toBe('hello');
  });

  it('refuses a file over the bound, a gzip that expands past it, a device, a directory and a missing file', async () => {
    await writeFile(join(dir, 'big.txt'), 'x'.repeat(1000));
    expect(await code(readInputFile(join(dir, 'big.txt'), { maxBytes: 999 }))).toBe('TOO_LARGE');
    // 4 MiB of zeros compress to a few KiB: the bound applies to what comes out.
    await writeFile(join(dir, 'bomb.jsonl.gz'), gzipSync(Buffer.alloc(4 << 20)));
    await expect(readInputFile(join(dir, 'bomb.jsonl.gz'), { maxBytes: 1 << 20 })).rejects.toThrow(
      /bomb\.jsonl\.gz: decompresses to more than the 1\.0 MiB limit/,
    );
    await writeFile(join(dir, 'bad.gz'), 'not gzip');
    expect(await code(readInputFile(join(dir, 'bad.gz')))).toBe('BAD_GZIP');
    expect(await code(readInputFile('/dev/zero'))).toBe('NOT_A_FILE');
    expect(await code(readInputFile(dir))).toBe('NOT_A_FILE');
    expect(await code(readInputFile(join(dir, 'absent')))).toBe('NOT_A_FILE');
  });
});

describe('baseModelDifference', () => {
  const id: BaseModelIdentity = { shape: { model_type: 'llama', hidden_size: 64 }, sample: [0.1234, -0.5] };

  it('accepts the same model, one rounded to half precision, and a record without the identity', () => {
    expect(baseModelDifference(id, id)).toBeNull();
    expect(baseModelDifference(id, { ...id, sample: [0.12341, -0.50049] })).toBeNull();
    expect(baseModelDifference(undefined, id)).toBeNull();
    expect(baseModelDifference({ shape: {}, sample: [] }, id)).toBeNull();
  });

  it('names another shape, or other weights of the same shape', () => {
    expect(baseModelDifference({ ...id, shape: { hidden_size: 128 } }, id)).toBe(
      'hidden_size 128 (this model: 64)',
    );
    expect(baseModelDifference({ ...id, sample: [0.2, -0.5] }, id)).toMatch(/other embedding weights/);
  });
});
