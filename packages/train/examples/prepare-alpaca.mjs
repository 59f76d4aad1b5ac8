// Prepares the Alpaca subset for fine-tuning stories260K: read, split off validation, tokenize with
// the prompt masked, batch in a seeded order, and save/restore the data position.
// Run from packages/train after `pnpm build`: node examples/prepare-alpaca.mjs
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Tokenizer } from '@huggingface/tokenizers';
import { importLlama2c } from '@sharelora/models';
import {
  BatchLoader,
  describeReport,
  padIdOf,
  readDataset,
  splitValidation,
  tokenizeDataset,
} from '@sharelora/train';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const dataDir = process.env.SHARELORA_DATA ?? resolve(repoRoot, '../shared/data');

// tokenizer.json from the llama2.c tokenizer, then a TextTokenizer over @huggingface/tokenizers.
const tokDir = await mkdtemp(join(tmpdir(), 'stories-tok-'));
const stories = join(dataDir, 'stories260K');
await importLlama2c(join(stories, 'stories260K.bin'), {
  tokenizerPath: join(stories, 'tok512.bin'),
  outDir: tokDir,
});
const hf = new Tokenizer(
  JSON.parse(await readFile(join(tokDir, 'tokenizer.json'), 'utf8')),
  JSON.parse(await readFile(join(tokDir, 'tokenizer_config.json'), 'utf8')),
);
await rm(tokDir, { recursive: true });
const tokenizer = {
  encode: (text, opts = {}) =>
    hf.encode(text, { text_pair: opts.pair ?? null, add_special_tokens: opts.addSpecialTokens ?? true }).ids,
  bosId: hf.token_to_id('<s>'),
  eosIds: [hf.token_to_id('</s>')],
  padId: null,
};

const ds = await readDataset(join(dataDir, 'alpaca/alpaca_data_1k.json'));
const { train, validation } = splitValidation(ds.records, { validation: 0.05, seed: 0 });
const opts = { maxLength: 512 }; // stories260K's context
const tr = tokenizeDataset(train, { type: 'instruction' }, tokenizer, opts);
const va = tokenizeDataset(validation, { type: 'instruction' }, tokenizer, opts);
console.log(describeReport(tr.report));
console.log(`validation: ${va.report.examples} examples`);

const loaderOpts = { batchSize: 8, seed: 0, padId: padIdOf(tokenizer), groupByLength: 16 };
const loader = new BatchLoader(tr.examples, loaderOpts);
const batch = loader.next();
console.log(`batch 0: ${batch.batchSize}x${batch.seqLength}, ${batch.tokens} tokens, epoch ${batch.epoch}`);

// A checkpoint stores the position; a new loader resumes exactly where this one is.
const saved = JSON.stringify(loader.position());
const resumed = new BatchLoader(tr.examples, loaderOpts, JSON.parse(saved));
const [a, b] = [resumed.next(), loader.next()];
const same = a.inputIds.length === b.inputIds.length && a.inputIds.every((id, i) => id === b.inputIds[i]);
console.log(`position ${saved}`);
console.log(`resumed batch matches: ${same}`);
