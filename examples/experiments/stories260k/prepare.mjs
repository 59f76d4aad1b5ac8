#!/usr/bin/env node
// Builds the stories260K study's inputs from the shared data folder ($SHARELORA_DATA, default
// ../shared/data beside the repository) into data/ beside this file: the model (sharelora import of
// the llama2.c checkpoint) and two instruction-style tasks, each a training file and a test file of
// prompt-completion records:
//   sentiment: SST-2 (GLUE) sentences, "Review: ...\nSentiment:" -> " positive" / " negative"
//              (train from train_10pct.tsv, test from the start of dev.tsv);
//   food:      E2E NLG references whose meaning representation names a food that the sentence
//              spells out, "Text: ...\nFood:" -> " French" (devset.csv and testset_w_refs.csv
//              pooled, split by meaning representation with a fixed seed).
// Run after `pnpm build`: node examples/experiments/stories260k/prepare.mjs
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseRows } from '../../../packages/data/dist/index.js';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '../../..');
const shared = resolve(process.env.SHARELORA_DATA ?? join(repo, '../shared/data'));
const out = join(here, 'data');
const TRAIN = 1200;
const TEST = 200;

function need(path) {
  const p = join(shared, path);
  if (!existsSync(p)) {
    console.error(`prepare.mjs: ${p} not found (set SHARELORA_DATA to the shared data folder)`);
    process.exit(2);
  }
  return p;
}

const writeJsonl = (name, records) => {
  writeFileSync(join(out, name), `${records.map((r) => JSON.stringify(r)).join('\n')}\n`);
  console.log(`${name}: ${records.length} records`);
};

function sst2(file, n) {
  const rows = parseRows(readFileSync(need(file), 'utf8'), file, { delimiter: '\t', quote: null });
  return rows.slice(1, n + 1).map(({ fields: [sentence, label] }) => ({
    prompt: `Review: ${sentence.trim()}\nSentiment:`,
    completion: label === '1' ? ' positive' : ' negative',
  }));
}

/**
 * References that spell out the food their meaning representation names, from both E2E files
 * (the dev set alone has two foods), split by meaning representation so that no restaurant
 * description is in both: the test file first, then the training file.
 */
function food(files, nTest, nTrain) {
  const byMr = new Map();
  for (const file of files) {
    const rows = parseRows(readFileSync(need(file), 'utf8'), file, { delimiter: ',', quote: '"' });
    for (const {
      fields: [mr, ref],
    } of rows.slice(1)) {
      const value = /food\[([^\]]+)\]/.exec(mr)?.[1];
      if (!value || !ref || !ref.includes(value)) continue;
      const refs = byMr.get(mr) ?? new Map();
      refs.set(ref.trim(), { prompt: `Text: ${ref.trim()}\nFood:`, completion: ` ${value}` });
      byMr.set(mr, refs);
    }
  }
  const test = [];
  const train = [];
  for (const mr of shuffled([...byMr.keys()])) {
    const into = test.length < nTest ? test : train;
    into.push(...byMr.get(mr).values());
  }
  const testSet = shuffled(test).slice(0, nTest);
  const seen = new Set(testSet.map((r) => r.prompt));
  return { test: testSet, train: shuffled(train.filter((r) => !seen.has(r.prompt))).slice(0, nTrain) };
}

/** A fixed-seed shuffle (Fisher-Yates over a 32-bit LCG): references come grouped by restaurant. */
function shuffled(items) {
  const a = [...items];
  let state = 2026;
  for (let i = a.length - 1; i > 0; i--) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    const j = state % (i + 1);
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

mkdirSync(out, { recursive: true });
writeJsonl('sentiment-train.jsonl', sst2('glue/SST-2/train_10pct.tsv', TRAIN));
writeJsonl('sentiment-test.jsonl', sst2('glue/SST-2/dev.tsv', TEST));
const foods = food(['e2e_nlg/devset.csv', 'e2e_nlg/testset_w_refs.csv'], TEST, TRAIN);
writeJsonl('food-train.jsonl', foods.train);
writeJsonl('food-test.jsonl', foods.test);

const model = join(out, 'stories260k');
if (!existsSync(join(model, 'config.json'))) {
  const r = spawnSync(
    process.execPath,
    [
      join(repo, 'apps/cli/dist/bin.js'),
      'import',
      need('stories260K/stories260K.bin'),
      '--from',
      'llama2c',
      '--tokenizer',
      need('stories260K/tok512.bin'),
      '--out',
      model,
    ],
    { stdio: 'inherit' },
  );
  if (r.status !== 0) process.exit(r.status ?? 1);
}
console.log(`ready: ${out}`);
