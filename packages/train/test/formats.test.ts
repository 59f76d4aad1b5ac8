import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ALPACA_PROMPT_INPUT,
  ALPACA_PROMPT_NO_INPUT,
  createFormat,
  DataError,
  type DataRecord,
  describeReport,
  GSM8K_PROMPT,
  IGNORE_INDEX,
  type LmExample,
  type LmText,
  readDataset,
  tokenizeDataset,
} from '../src/index.js';
import { data, type HfTextTokenizer, haveData, robertaLikeTokenizer, storiesTokenizer } from './helpers.js';

// The stanford_alpaca PROMPT_DICT texts, written out here independently of src/ (train.py at
// tatsu-lab/stanford_alpaca 761dc5b).
const ALPACA_HEAD_INPUT =
  'Below is an instruction that describes a task, paired with an input that provides further context. ' +
  'Write a response that appropriately completes the request.';
const ALPACA_HEAD_NO_INPUT =
  'Below is an instruction that describes a task. Write a response that appropriately completes the request.';

const realData = haveData('alpaca/alpaca_data_1k.json', 'gsm8k/test.jsonl', 'stories260K/tok512.bin');

let tok: HfTextTokenizer;
beforeAll(async () => {
  if (realData) tok = await storiesTokenizer();
});

const record = (values: Record<string, unknown>): DataRecord => ({
  values,
  source: { file: 'mem', line: 1, row: 1 },
});

describe('templates', () => {
  it('the Alpaca and GSM8K templates are the published texts', () => {
    expect(ALPACA_PROMPT_INPUT).toBe(
      `${ALPACA_HEAD_INPUT}\n\n### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:`,
    );
    expect(ALPACA_PROMPT_NO_INPUT).toBe(
      `${ALPACA_HEAD_NO_INPUT}\n\n### Instruction:\n{instruction}\n\n### Response:`,
    );
    expect(GSM8K_PROMPT).toBe('Question: {question}\nAnswer:');
  });

  it('placeholders are filled once: record text containing "{input}" stays as it is', () => {
    const t = createFormat({ type: 'instruction' }).render(
      record({ instruction: 'Explain {input} and {output}', input: 'a {instruction}', output: 'o' }),
    ) as LmText;
    expect(t.prompt).toContain(
      '### Instruction:\nExplain {input} and {output}\n\n### Input:\na {instruction}\n\n',
    );
  });

  it('a missing or null input picks the no-input template; whitespace input keeps the input one', () => {
    const f = createFormat({ type: 'instruction' });
    const p = (values: Record<string, unknown>) => (f.render(record(values)) as LmText).prompt;
    expect(p({ instruction: 'i', output: 'o' })).toBe(
      `${ALPACA_HEAD_NO_INPUT}\n\n### Instruction:\ni\n\n### Response:`,
    );
    expect(p({ instruction: 'i', input: null, output: 'o' })).toBe(p({ instruction: 'i', output: 'o' }));
    expect(p({ instruction: 'i', input: ' ', output: 'o' })).toContain('### Input:\n \n\n');
  });

  it('configurable fields: prompt-completion and text', () => {
    const pc = createFormat({ type: 'prompt-completion', fields: { prompt: 'q', completion: 'a' } });
    expect(pc.render(record({ q: 'Q?', a: ' A.' }))).toEqual({ kind: 'lm', prompt: 'Q?', response: ' A.' });
    expect(createFormat({ type: 'text', fields: { text: 'body' } }).render(record({ body: 'hi' }))).toEqual({
      kind: 'lm',
      prompt: '',
      response: 'hi',
    });
  });

  it('bad specs are BAD_OPTION errors', () => {
    const code = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return (e as DataError).code;
      }
      return null;
    };
    expect(code(() => createFormat({ type: 'nope' } as never))).toBe('BAD_OPTION');
    expect(code(() => createFormat({ type: 'text', fields: { prompt: 'x' } as never }))).toBe('BAD_OPTION');
    expect(code(() => createFormat({ type: 'classification' }))).toBe('BAD_OPTION');
    expect(code(() => createFormat({ type: 'classification', labels: ['a'] }))).toBe('BAD_OPTION');
    expect(code(() => createFormat({ type: 'classification', labels: ['a', 'a'] }))).toBe('BAD_OPTION');
    expect(code(() => createFormat({ type: 'classification', labels: ['a', 'b'], regression: {} }))).toBe(
      'BAD_OPTION',
    );
  });
});

describe.runIf(realData)('Alpaca on the real 1k subset with the stories260K tokenizer', () => {
  it('every record renders byte-exact and masks the prompt; EOS ends the response', async () => {
    const ds = await readDataset(data('alpaca/alpaca_data_1k.json'));
    expect(ds.records.length).toBe(1000);
    const format = createFormat({ type: 'instruction' });
    const { examples, report } = tokenizeDataset(ds, { type: 'instruction' }, tok);
    expect(report).toMatchObject({
      records: 1000,
      examples: 1000,
      truncated: 0,
      dropped: [],
      boundaryMerges: 0,
    });
    let withInput = 0;
    ds.records.forEach((r, i) => {
      const { instruction, input, output } = r.values as Record<string, string>;
      const expected =
        input === ''
          ? `${ALPACA_HEAD_NO_INPUT}\n\n### Instruction:\n${instruction}\n\n### Response:`
          : `${ALPACA_HEAD_INPUT}\n\n### Instruction:\n${instruction}\n\n### Input:\n${input}\n\n### Response:`;
      if (input !== '') withInput++;
      expect(format.render(r)).toEqual({ kind: 'lm', prompt: expected, response: output });

      const ex = examples[i];
      const promptIds = tok.encode(expected, { addSpecialTokens: false });
      expect(ex.inputIds).toEqual([1, ...tok.encode(expected + output, { addSpecialTokens: false }), 2]);
      expect(ex.promptLength).toBe(1 + promptIds.length);
      expect(ex.labels.slice(0, ex.promptLength).every((l) => l === IGNORE_INDEX)).toBe(true);
      expect(ex.labels.slice(ex.promptLength)).toEqual(ex.inputIds.slice(ex.promptLength));
      expect(ex.labels.at(-1)).toBe(2);
      expect(ex.attentionMask.every((m) => m === 1)).toBe(true);
      expect(ex.source).toEqual({ file: ds.file, line: 1, row: i + 1, item: true });
    });
    expect(withInput).toBe(392);
    // The loss tokens decode back to the output: the mask sits exactly on the boundary.
    const ex = examples[1];
    expect(tok.decode(ex.labels.slice(ex.promptLength, -1))).toBe(
      (ds.records[1].values as { output: string }).output,
    );
    expect(report.lossTokens).toBe(examples.reduce((s, e) => s + e.labels.length - e.promptLength, 0));
  });

  it('trainOnSource puts the loss on the prompt too; addBos/addEos switch BOS and EOS', async () => {
    const recs = (await readDataset(data('alpaca/alpaca_data_1k.json'))).records.slice(0, 20);
    const masked = tokenizeDataset(recs, { type: 'instruction' }, tok).examples;
    const all = tokenizeDataset(recs, { type: 'instruction' }, tok, { trainOnSource: true }).examples;
    all.forEach((e, i) => {
      expect(e.inputIds).toEqual(masked[i].inputIds);
      expect(e.labels).toEqual(e.inputIds);
    });
    const bare = tokenizeDataset(recs, { type: 'instruction' }, tok, {
      addBos: false,
      addEos: false,
    }).examples;
    expect(bare[0].inputIds).toEqual(masked[0].inputIds.slice(1, -1));
    expect(bare[0].promptLength).toBe(masked[0].promptLength - 1);
  });
});

describe.runIf(realData)('GSM8K', () => {
  it('prompt "Question: …\\nAnswer:", the worked answer with its #### line as the response', async () => {
    const ds = await readDataset(data('gsm8k/test.jsonl'));
    expect(ds.records.length).toBe(1319);
    const first = ds.records[0].values as { question: string; answer: string };
    const t = createFormat({ type: 'gsm8k' }).render(ds.records[0]) as LmText;
    expect(t.prompt).toBe(`Question: ${first.question}\nAnswer:`);
    expect(t.response).toBe(` ${first.answer}`);
    expect(t.response).toMatch(/\n#### 18$/);
    const { examples } = tokenizeDataset(ds.records.slice(0, 50), { type: 'gsm8k' }, tok);
    const ex = examples[0];
    expect(ex.inputIds[0]).toBe(1);
    expect(tok.decode(ex.inputIds.slice(1, ex.promptLength))).toBe(t.prompt);
    expect(tok.decode(ex.labels.slice(ex.promptLength, -1))).toBe(first.answer);
    expect(ex.inputIds.at(-1)).toBe(2);
  });

  it('maxLength: responses lose their tail, prompts that do not fit are dropped, and both are counted', async () => {
    const recs = (await readDataset(data('gsm8k/test.jsonl'))).records.slice(0, 300);
    const full = tokenizeDataset(recs, { type: 'gsm8k' }, tok).examples;
    const max = 160;
    // Expected counts, derived from the untruncated examples.
    const dropped = full.filter((e) => e.promptLength >= max);
    const cut = full.filter((e) => e.promptLength < max && e.inputIds.length > max);
    expect(dropped.length).toBeGreaterThan(0);
    expect(cut.length).toBeGreaterThan(0);
    const { examples, report } = tokenizeDataset(recs, { type: 'gsm8k' }, tok, { maxLength: max });
    expect(report.maxLength).toBe(max);
    expect(report.dropped.map((d) => d.source)).toEqual(dropped.map((e) => e.source));
    expect(report.dropped.every((d) => d.reason === 'prompt-too-long' && d.promptTokens >= max)).toBe(true);
    expect(report.truncated).toBe(cut.length);
    expect(report.tokensCut).toBe(cut.reduce((s, e) => s + e.inputIds.length - max, 0));
    expect(examples.length).toBe(300 - dropped.length);
    const bySource = new Map(full.map((e) => [e.source.line, e]));
    for (const e of examples) {
      const whole = bySource.get(e.source.line) as LmExample;
      expect(e.inputIds.length).toBe(Math.min(max, whole.inputIds.length));
      // The prompt is intact and still masked; only the response's tail is gone.
      expect(e.inputIds).toEqual(whole.inputIds.slice(0, max));
      expect(e.promptLength).toBe(whole.promptLength);
      expect(e.labels).toEqual(whole.labels.slice(0, max));
    }
    const text = describeReport(report);
    expect(text).toContain(
      `${report.truncated} truncated (${report.tokensCut.toLocaleString('en-US')} tokens cut)`,
    );
    expect(text).toContain(
      `${dropped.length} dropped, the prompt alone fills the max length ${max}: ${ds(dropped[0])}`,
    );
  });
});

const ds = (e: LmExample) => `${e.source.file}:${e.source.line}`;

describe('bad data names file and line', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sharelora-baddata-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  const tok = robertaLikeTokenizer();
  async function failure(name: string, content: string, run: (path: string) => unknown): Promise<DataError> {
    const path = join(dir, name);
    await writeFile(path, content);
    try {
      await run(path);
    } catch (e) {
      expect(e).toBeInstanceOf(DataError);
      return e as DataError;
    }
    throw new Error('expected a DataError');
  }

  it('a record without a needed field', async () => {
    const e = await failure(
      'm.jsonl',
      '{"instruction": "a", "output": "b"}\n{"instruction": "c"}\n',
      async (p) => tokenizeDataset(await readDataset(p), { type: 'instruction' }, tok),
    );
    expect(e.code).toBe('MISSING_FIELD');
    expect(e.message).toBe(`${join(dir, 'm.jsonl')}:2: missing field "output" (the record has: instruction)`);
  });

  it('a table without a needed column is reported at its header', async () => {
    const e = await failure('h.tsv', 'sentence\tlable\nfine\t1\n', async (p) =>
      tokenizeDataset(
        await readDataset(p),
        { type: 'classification', fields: { text: 'sentence' }, labels: ['0', '1'] },
        tok,
      ),
    );
    expect(e.code).toBe('MISSING_FIELD');
    expect(e.message).toMatch(
      new RegExp(`^${join(dir, 'h.tsv')}:1: missing column "label" .*columns: "sentence", "lable"`),
    );
  });

  it('a label outside the label set, by name or by id', async () => {
    const spec = {
      type: 'classification',
      fields: { text: 'sentence' },
      labels: ['negative', 'positive'],
    } as const;
    const e = await failure('l.tsv', 'sentence\tlabel\na\t0\nb\tpositive\nc\t2\n', async (p) =>
      tokenizeDataset(await readDataset(p), spec, tok),
    );
    expect(e.code).toBe('BAD_LABEL');
    expect(e.message).toBe(
      `${join(dir, 'l.tsv')}:4: label "2" in "label" is not in the label set ["negative", "positive"] (nor an id 0..1)`,
    );
    expect([e.line, e.row]).toEqual([4, 3]);
  });

  it('wrong types: a number where text is needed, an object as a label, a non-numeric regression target', async () => {
    const text = await failure('t.jsonl', '{"text": 42}\n', async (p) =>
      tokenizeDataset(await readDataset(p), { type: 'text' }, tok),
    );
    expect([text.code, text.line]).toEqual(['BAD_TYPE', 1]);
    expect(text.message).toContain('field "text" must be text, got number');
    const label = await failure(
      'o.jsonl',
      '{"text": "a", "label": 1}\n{"text": "b", "label": {"id": 1}}\n',
      async (p) => tokenizeDataset(await readDataset(p), { type: 'classification', labels: ['a', 'b'] }, tok),
    );
    expect([label.code, label.line]).toEqual(['BAD_TYPE', 2]);
    const score = await failure('s.tsv', 'sentence1\tsentence2\tscore\na\tb\thigh\n', async (p) =>
      tokenizeDataset(
        await readDataset(p),
        { type: 'sentence-pair', fields: { label: 'score' }, regression: { min: 0, max: 5 } },
        tok,
      ),
    );
    expect([score.code, score.line]).toEqual(['BAD_TYPE', 2]);
  });

  it('a regression target outside its range, and a null field', async () => {
    const range = await failure('r.tsv', 'sentence1\tsentence2\tscore\na\tb\t4.5\nc\td\t5.2\n', async (p) =>
      tokenizeDataset(
        await readDataset(p),
        { type: 'sentence-pair', fields: { label: 'score' }, regression: { min: 0, max: 5 } },
        tok,
      ),
    );
    expect(range.code).toBe('BAD_LABEL');
    expect(range.message).toBe(`${join(dir, 'r.tsv')}:3: regression target 5.2 in "score" is outside [0, 5]`);
    const nul = await failure('n.jsonl', '{"prompt": null, "completion": "x"}\n', async (p) =>
      tokenizeDataset(await readDataset(p), { type: 'prompt-completion' }, tok),
    );
    expect([nul.code, nul.message]).toEqual([
      'MISSING_FIELD',
      `${join(dir, 'n.jsonl')}:1: field "prompt" is null`,
    ]);
  });

  it('an empty text with neither BOS nor EOS leaves nothing to learn: dropped and reported', () => {
    const recs = [record({ text: '' }), record({ text: 'ok' })];
    const { examples, report } = tokenizeDataset(recs, { type: 'text' }, tok, { addEos: false });
    expect(examples.length).toBe(1);
    expect(report.dropped.map((d) => d.reason)).toEqual(['no-loss-tokens']);
  });
});
