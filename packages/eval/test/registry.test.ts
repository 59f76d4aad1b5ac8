/**
 * The task registry: one definition per task name, every one runnable or mergeable as it says, and
 * nothing but the task modules' default exports, found by file (in the tests as in the build).
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'tsup';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  EVAL_TASK_DEFINITIONS,
  EVAL_TASKS,
  GLUE_EVAL_TASKS,
  parseOptionValue,
  TASK_OPTIONS,
  type TaskOption,
  taskDefinition,
  taskOptionUses,
} from '../src/index.js';
import { importMetaGlob } from '../tsup.config.js';

const TASKS_DIR = join(dirname(fileURLToPath(import.meta.url)), '../src/tasks');

describe('task registry', () => {
  it('is the default export of every module in src/tasks/, in their `order`', async () => {
    const found: unknown[] = [];
    for (const file of (await readdir(TASKS_DIR)).filter((f) => f.endsWith('.ts')).sort()) {
      const module = await import(pathToFileURL(join(TASKS_DIR, file)).href);
      if ('default' in module) found.push(module.default);
    }
    expect(found.length).toBe(EVAL_TASK_DEFINITIONS.length);
    for (const d of found) expect(EVAL_TASK_DEFINITIONS).toContain(d);
    const orders = EVAL_TASK_DEFINITIONS.map((d) => d.order);
    expect(orders).toEqual([...orders].sort((a, b) => a - b));
    // The shipped tasks keep their places in help listings (a new task may go anywhere among them).
    const shipped = ['gsm8k', 'mmlu', 'mmlu-pro', 'humaneval', 'e2e', 'glue-sst2'];
    expect(EVAL_TASK_DEFINITIONS.map((d) => d.names[0]).filter((n) => shipped.includes(n))).toEqual(shipped);
  });

  it('names each task once; the runner and GLUE lists are derived from it', () => {
    const names = EVAL_TASK_DEFINITIONS.flatMap((d) => d.names);
    expect(new Set(names).size).toBe(names.length);
    expect([...EVAL_TASKS, ...GLUE_EVAL_TASKS].sort()).toEqual([...names].sort());
    for (const name of names) expect(taskDefinition(name)?.names).toContain(name);
    expect(taskDefinition('no-such-task')).toBeUndefined();
  });

  it('causal-LM tasks run, classifiers classify, every task can recompute its metrics, file scorers name their flag', () => {
    for (const d of EVAL_TASK_DEFINITIONS) {
      expect(typeof d.metrics, d.names[0]).toBe('function');
      expect(d.sampleFields.length, d.names[0]).toBeGreaterThan(0);
      if (d.model === 'causal-lm') expect(typeof d.run, d.names[0]).toBe('function');
      if (d.model === 'classifier') expect(typeof d.classify, d.names[0]).toBe('function');
      const flags = d.options.map((u) => u.option.flag);
      expect(new Set(flags).size, d.names[0]).toBe(flags.length);
      if (!d.fileScoring) continue;
      expect(flags, d.names[0]).not.toContain(d.fileScoring.option.flag);
      for (const kept of d.fileScoring.keeps) expect(flags, `${d.names[0]} keeps --${kept}`).toContain(kept);
      expect(taskOptionUses(d, true)[0].option).toBe(d.fileScoring.option);
    }
  });

  it('declares each flag once, one way (the CLI reads a flag alike for every task)', () => {
    const flags = TASK_OPTIONS.map((o) => o.flag);
    expect(new Set(flags).size).toBe(flags.length);
    for (const d of EVAL_TASK_DEFINITIONS)
      for (const use of [...taskOptionUses(d), ...taskOptionUses(d, true)])
        expect(TASK_OPTIONS.find((o) => o.flag === use.option.flag)).toEqual(use.option);
    // Every option's default is a value its own rule accepts.
    for (const d of EVAL_TASK_DEFINITIONS)
      for (const use of d.options)
        for (const name of d.names) {
          const v = use.default;
          const value = v !== null && typeof v === 'object' && 'byName' in v ? v.byName[name] : v;
          if (value === undefined || typeof value === 'boolean') continue;
          const text = Array.isArray(value) ? value.join(',') : String(value);
          expect(parseOptionValue(use.option, text), `${name} --${use.option.flag}`).toEqual(value);
        }
  });
});

const DIST = join(dirname(fileURLToPath(import.meta.url)), '../dist/index.js');
// turbo builds before testing; a bare `vitest run` on a fresh clone has no dist to check.
const itDist = existsSync(DIST) || process.env.CI === 'true' ? it : it.skip;

describe("the build's import.meta.glob", () => {
  itDist('gives the built package (what the CLI imports) the same tasks in the same order', async () => {
    const built: typeof EVAL_TASK_DEFINITIONS = (await import(pathToFileURL(DIST).href))
      .EVAL_TASK_DEFINITIONS;
    expect(
      built.map((d) => d.names),
      'dist/index.js is stale or its glob missed a task: run pnpm build',
    ).toEqual(EVAL_TASK_DEFINITIONS.map((d) => d.names));
  });

  let tmp = '';
  beforeAll(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'sharelora-glob-'));
    await mkdir(join(tmp, 'src/sub'), { recursive: true });
    await mkdir(join(tmp, 'bad'));
    const files: Record<string, string> = {
      'index.ts':
        "export const found = import.meta.glob('./*.ts', { eager: true });\nexport default 'index';",
      'a.ts': "export default 'a';",
      'b.ts': "export const b = 'b';",
      'c.js': "export default 'c';",
      '.hidden.ts': "export default 'hidden';",
      'sub/d.ts': "export default 'd';",
    };
    for (const [name, text] of Object.entries(files)) await writeFile(join(tmp, 'src', name), text);
    const bad = "export const found = import.meta.glob('./**/*.ts', { eager: true });";
    await writeFile(join(tmp, 'bad/index.ts'), bad);
  });
  afterAll(() => rm(tmp, { recursive: true, force: true }));

  const bundle = async (folder: string) => {
    const outDir = join(tmp, `out-${folder}`);
    await build({
      entry: { index: join(tmp, folder, 'index.ts') },
      outDir,
      format: ['esm'],
      config: false,
      silent: true,
      esbuildPlugins: [importMetaGlob],
      esbuildOptions: (options) => {
        options.logLevel = 'silent';
      },
    });
    return import(pathToFileURL(join(outDir, 'index.js')).href);
  };

  it('finds the modules vite finds (the importer, dotfiles and subfolders left out)', async () => {
    const viteFound = (await import(pathToFileURL(join(tmp, 'src/index.ts')).href)).found;
    const built = (await bundle('src')).found;
    expect(Object.keys(built)).toEqual(['./a.ts', './b.ts']);
    expect(Object.keys(viteFound)).toEqual(Object.keys(built));
    expect(built['./a.ts'].default).toBe('a');
    expect(built['./b.ts'].b).toBe('b');
  });

  it('fails the build on a pattern it does not expand', async () => {
    await expect(bundle('bad')).rejects.toThrow(/only import\.meta\.glob/);
  });
});

describe('task option values', () => {
  const option = (kind: TaskOption['kind']): TaskOption => ({
    flag: 'x',
    key: 'x',
    arg: 'X',
    help: '',
    kind,
  });
  const accepts = (kind: TaskOption['kind'], text: string | boolean) => parseOptionValue(option(kind), text);
  const refuses = (kind: TaskOption['kind'], text: string | boolean) =>
    expect(() => accepts(kind, text), `${JSON.stringify(kind)} "${text}"`).toThrow(/^--x must be .*got "/);

  it('reads each kind and refuses what its rule does not allow, naming the flag', () => {
    expect(accepts('count', '3')).toBe(3);
    for (const bad of ['0', '-1', '1.5', '', ' ', 'x', 'Infinity']) refuses('count', bad);
    expect(accepts('whole', '0')).toBe(0);
    refuses('whole', '-1');
    expect(accepts('non-negative', '0.7')).toBe(0.7);
    refuses('non-negative', '-0.1');
    refuses('non-negative', 'NaN');
    expect(accepts('seed', String(2 ** 53 - 1))).toBe(2 ** 53 - 1);
    refuses('seed', String(2 ** 53));
    expect(accepts('count-list', '1, 10')).toEqual([1, 10]);
    for (const bad of ['1,x', '1,,2', '0', '']) refuses('count-list', bad);
    expect(accepts({ oneOf: ['a', 'b'] }, 'b')).toBe('b');
    refuses({ oneOf: ['a', 'b'] }, 'c');
    expect(accepts('path', 'out/x.jsonl')).toBe('out/x.jsonl');
    refuses('path', '');
    expect(accepts('switch', true)).toBe(true);
    refuses('switch', 'yes');
    refuses('count', true);
    expect(parseOptionValue(option('count'), undefined)).toBeUndefined();
  });
});
