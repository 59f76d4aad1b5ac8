/**
 * Training and evaluation read the GLUE files through one data layer: every RTE dev row reaches the
 * model with the same texts and label in `train --format glue-rte` and `eval --task glue-rte`
 * (RTE's TSV quotes the fields that hold '"', which a quote-unaware reader would pass through).
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadGlue } from '@sharelora/eval';
import { createFormat, GLUE_TASKS, readDataset } from '@sharelora/train';
import { describe, expect, it } from 'vitest';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const DATA = process.env.SHARELORA_DATA ?? resolve(repoRoot, '../shared/data');
const RTE_DEV = join(DATA, 'glue/RTE/dev.tsv');
const have = existsSync(RTE_DEV);
if (!have && process.env.CI !== 'true')
  console.warn(`SKIPPING the RTE data-layer test: ${RTE_DEV} not found`);
const itData = have || process.env.CI === 'true' ? it : it.skip;

describe('one data layer under train and eval', () => {
  itData('RTE dev: the same sentence pairs and labels in training and evaluation', async () => {
    const { read, format } = GLUE_TASKS.rte;
    const ds = await readDataset(RTE_DEV, read);
    const fmt = createFormat(format);
    const trained = ds.records.map((r) => {
      const t = fmt.render(r);
      if (t.kind !== 'classification') throw new Error('RTE renders classifier inputs');
      return [t.text, t.pair, t.label];
    });
    const evaluated = (await loadGlue('rte', RTE_DEV)).map((e) => [e.text, e.textPair, e.label]);
    expect(trained).toHaveLength(277);
    expect(evaluated).toEqual(trained);
    // The rows that hold quotes: their texts carry the quotes once, not the file's doubled ones.
    const quoted = trained.filter(([a, b]) => `${a}${b}`.includes('"'));
    expect(quoted.length).toBeGreaterThan(0);
    expect(quoted.some(([a, b]) => `${a}${b}`.includes('""'))).toBe(false);
  });
});
