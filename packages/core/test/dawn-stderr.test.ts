import { mkdtempSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { quietDawnStart, withoutDawnNotices } from '../src/device/dawn-stderr.js';
import { runNodeModule } from './child-node.js';

const NOTICE = (kind: string, from = 1000000) =>
  `Warning: maxDynamic${kind}BuffersPerPipelineLayout artificially reduced from ${from} to 16 to fit dynamic offset allocation limit.`;

const node = (code: string) => runNodeModule(code);

describe("Dawn's limit notices", () => {
  it('are printed by Dawn itself when it first enumerates adapters', () => {
    const r = node(
      "import { create } from 'webgpu'; const a = await create([]).requestAdapter(); process.exit(a ? 0 : 3);",
    );
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain(NOTICE('Uniform'));
  });

  it('do not reach stderr through init(), which still creates a working device', () => {
    const dist = new URL('../dist/node.js', import.meta.url).href;
    const r = node(
      `import { init, scale, shutdown, tensor } from ${JSON.stringify(dist)};
       await init();
       const y = await scale(tensor([1, 2, 3], [3]), 2).data();
       console.log(Array.from(y).join(','));
       shutdown();`,
    );
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('2,4,6');
    expect(r.stderr).not.toMatch(/artificially reduced/);
  });

  it('are the only lines dropped from what is written while Dawn starts', async () => {
    // Capture descriptor 2 around the quiet start, as a terminal would see it.
    const koffi = createRequire(import.meta.url)('koffi');
    const libc = koffi.load('libc.so.6');
    const dup = libc.func('int dup(int)');
    const dup2 = libc.func('int dup2(int, int)');
    const dir = mkdtempSync(join(tmpdir(), 'stderr-test-'));
    const outer = openSync(join(dir, 'err'), 'w+');
    const saved = dup(2);
    dup2(outer, 2);
    let result: number;
    try {
      result = await quietDawnStart(async () => {
        writeSync(2, `keep one\n${NOTICE('Uniform')}\n${NOTICE('Storage', 500000)}\nkeep two\n`);
        return 42;
      });
      writeSync(2, 'after\n');
    } finally {
      dup2(saved, 2);
    }
    const seen = readFileSync(join(dir, 'err'), 'utf8');
    rmSync(dir, { recursive: true, force: true });
    expect(result).toBe(42);
    expect(seen).toBe('keep one\nkeep two\nafter\n');
  });

  it('leave lines that only look alike', () => {
    const near = `Warning: maxDynamicUniformBuffersPerPipelineLayout artificially reduced from many to 16 to fit dynamic offset allocation limit.`;
    expect(withoutDawnNotices(`${near}\n${NOTICE('Storage')}\nWarning: something else\n`)).toBe(
      `${near}\nWarning: something else\n`,
    );
  });
});
