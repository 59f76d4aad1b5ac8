import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  EvalDataError,
  type EvalModel,
  EvalModelError,
  loadGsm8k,
  loadHumanEval,
  loadMmluPro,
  type Progress,
  parseCsv,
  pyStrip,
  readResult,
  readText,
  runEval,
} from '../src/index.js';
import { dataPath, hasData, hasPython } from './data.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sharelora-io-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('readers', () => {
  it('a .gz that expands past the bound, or a device, is an EvalDataError naming the file', async () => {
    const bomb = join(dir, 'bomb.jsonl.gz');
    await writeFile(bomb, gzipSync(Buffer.alloc(4 << 20)));
    await expect(readText(bomb, 1 << 20)).rejects.toThrow(EvalDataError);
    await expect(readText(bomb, 1 << 20)).rejects.toThrow(
      /bomb\.jsonl\.gz: decompresses to more than the 1\.0 MiB limit/,
    );
    await expect(readText('/dev/zero')).rejects.toThrow(/\/dev\/zero: is not a regular file/);
  });

  it('parses CSV like Python csv (quotes, doubled quotes, multi-line fields, CRLF, blank lines)', () => {
    const rows = parseCsv('a,"b ""q"", c"\r\n"multi\nline",\n\nlast,x', 'f.csv');
    expect(rows).toEqual([
      { value: ['a', 'b "q", c'], line: 1 },
      { value: ['multi\nline', ''], line: 2 },
      { value: ['last', 'x'], line: 5 },
    ]);
    expect(() => parseCsv('ok\n"never closed\n', 'f.csv')).toThrow('f.csv:2: a quoted field is never closed');
    expect(() => parseCsv('a,b"c\n', 'f.csv')).toThrow('f.csv:1: a quote inside an unquoted field');
  });

  it("strips like Python's str.strip()", () => {
    // Python strips U+001C..U+001F and U+0085 but not U+FEFF; JavaScript's trim() does the opposite.
    expect(pyStrip('\u001c\u0085 x \ufeff')).toBe('x \ufeff');
    expect(pyStrip('\t\u3000y\n')).toBe('y');
  });

  it('names file and line of malformed JSONL and missing fields', async () => {
    const file = join(dir, 'bad.jsonl');
    await writeFile(file, '{"question": "q", "answer": "a #### 1"}\n\n{"question": "q2", "answer": 5}\n');
    await expect(loadGsm8k(file)).rejects.toThrow(`${file}:3: field "answer" must be a string, got number`);
    await writeFile(file, '{"question": "q", "answer": "a #### 1"}\n{oops}\n');
    await expect(loadGsm8k(file)).rejects.toThrow(new RegExp(`^${file}:2: invalid JSON`));
    await writeFile(file, '{"question": "q", "answer": "no final line"}\n');
    await expect(loadGsm8k(file)).rejects.toThrow(`${file}:1: answer has no final "#### N" line`);
    await writeFile(
      file,
      '{"task_id": "A", "prompt": "p", "entry_point": "f", "canonical_solution": "", "test": ""}\n["x"]\n',
    );
    await expect(loadHumanEval(file)).rejects.toThrow(`${file}:2: expected a JSON object on each line`);
    await writeFile(
      file,
      '{"question_id": 1, "question": "q", "options": ["a", "b"], "answer": "C", "answer_index": 1, "category": "law"}\n',
    );
    await expect(loadMmluPro(file)).rejects.toThrow(`${file}:1: "answer" "C" disagrees with answer_index 1`);
    await expect(loadGsm8k(join(dir, 'missing.jsonl'))).rejects.toBeInstanceOf(EvalDataError);
  });

  it('rejects files that are not results', async () => {
    const file = join(dir, 'not-a-result.json');
    await writeFile(
      file,
      JSON.stringify({ model: 'm', adapter: null, task: 't', settings: {}, samples: [] }),
    );
    await expect(readResult(file)).rejects.toThrow(/settings\.documents/);
  });
});

describe.skipIf(!(hasData('gsm8k') && hasData('mmlu') && hasData('mmlu_pro') && hasData('humaneval')))(
  'runEval resolves the data folders of ../shared/data',
  () => {
    const model: EvalModel = {
      name: 'constant',
      generate: async (reqs) => reqs.map(() => ' The answer is (A). The answer is 42.\n    return None\n'),
      loglikelihood: async (reqs) =>
        reqs.map((r) => ({ logprob: r.continuation === ' B' ? -1 : -2, isGreedy: false })),
    };

    it('runs every task with --limit and reports progress', async () => {
      const seen: Progress[] = [];
      const onProgress = (p: Progress) => seen.push(p);
      const gsm = await runEval(model, { task: 'gsm8k', data: dataPath('gsm8k'), limit: 3, onProgress });
      expect(gsm.samples.length).toBe(3);
      expect(seen.at(-1)).toEqual({ task: 'gsm8k', stage: 'generate', done: 3, total: 3 });
      const cot = await runEval(model, {
        task: 'gsm8k-cot',
        data: dataPath('gsm8k', 'test.jsonl'),
        limit: 2,
      });
      expect(cot.settings.shots).toBe(8);
      const mmlu = await runEval(model, { task: 'mmlu', data: dataPath('mmlu'), limit: 1 });
      expect(mmlu.samples.length).toBe(57);
      expect((mmlu.metrics as { acc: number }).acc).toBeGreaterThan(0);
      const pro = await runEval(model, { task: 'mmlu-pro', data: dataPath('mmlu_pro'), limit: 1 });
      expect(pro.samples.length).toBe(14);
      const proLl = await runEval(model, {
        task: 'mmlu-pro',
        data: dataPath('mmlu_pro'),
        limit: 5,
        scoring: 'loglikelihood',
      });
      expect(proLl.samples.length).toBe(5);
      if (hasPython()) {
        const he = await runEval(model, { task: 'humaneval', data: dataPath('humaneval'), limit: 2 });
        expect(he.metrics).toMatchObject({ n: 2, pass_at_k: { 'pass@1': 0 } });
      }
    });

    it('checks the model keeps the contract', async () => {
      const broken: EvalModel = { ...model, generate: async () => ['only one'] };
      await expect(
        runEval(broken, { task: 'gsm8k-cot', data: dataPath('gsm8k'), limit: 2 }),
      ).rejects.toBeInstanceOf(EvalModelError);
    });
  },
);
