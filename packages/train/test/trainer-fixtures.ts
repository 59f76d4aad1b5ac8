/**
 * Shared by the trainer tests: a generated story corpus (TinyStories-like sentences, so the
 * pretrained stories260K has something to adapt to), and models with a fresh adapter.
 */
import { injectAdapter, type Method, presetConfig } from '@sharelora/adapters';
import { type AnyModel, loadModel, loadTokenizer } from '@sharelora/models';
import { type DataRecord, type Example, padIdOf, textTokenizerOf, tokenizeDataset } from '../src/index.js';

const NAMES = ['Tom', 'Lily', 'Ben', 'Mia', 'Sam', 'Anna', 'Max', 'Sue'];
const THINGS = [
  'red ball',
  'blue kite',
  'big box',
  'little cat',
  'green hat',
  'soft bear',
  'yellow car',
  'old boat',
];
const PLACES = ['in the garden', 'under the bed', 'at the park', 'by the river'];

/** `n` short stories of one pattern with varying names, things and places (so lengths vary too). */
export function stories(n: number): DataRecord[] {
  return Array.from({ length: n }, (_, i) => {
    const name = NAMES[i % NAMES.length];
    const thing = THINGS[(i * 3 + Math.floor(i / 8)) % THINGS.length];
    const place = PLACES[(i * 5 + 1) % PLACES.length];
    const text = `${name} found a ${thing} ${place}. ${name} gave the ${thing} to mom, and mom smiled.`;
    return { values: { text }, source: { file: 'stories.jsonl', line: i + 1, row: i + 1 } };
  });
}

/** Tokenized text examples for the model directory's tokenizer. */
export async function textExamples(
  modelDir: string,
  records: DataRecord[],
): Promise<{ examples: Example[]; padId: number }> {
  const tok = textTokenizerOf(await loadTokenizer(modelDir));
  return { examples: tokenizeDataset(records, { type: 'text' }, tok).examples, padId: padIdOf(tok) };
}

/** A model loaded from `dir` with a fresh adapter (seeded, so two calls give identical models). */
export async function adapted(
  dir: string,
  opts: { method?: Method; dropout?: number; targets?: string[] } = {},
): Promise<AnyModel> {
  const { model } = await loadModel(dir);
  injectAdapter(
    model,
    presetConfig(opts.method ?? 'share-a', {
      r: 4,
      alpha: 8,
      dropout: opts.dropout ?? 0,
      targetModules: opts.targets ?? ['q_proj', 'v_proj'],
    }),
    { rng: 0 },
  );
  return model;
}
