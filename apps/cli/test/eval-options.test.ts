/**
 * `sharelora eval`'s task list, task option help and flag checks come from the task definitions:
 * every task and every option it declares is in --help with the defaults the task runs with, and
 * an option given to a task that does not take it is refused before anything loads.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  EVAL_TASK_DEFINITIONS,
  formatOptionValue,
  optionDefault,
  TASK_OPTIONS,
  taskOptionUses,
} from '@sharelora/eval';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from './run-cli.js';

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'sharelora-eval-options-'));
});
afterAll(() => rm(tmp, { recursive: true, force: true }));

const help = runCli(['eval', '--help']).stdout;
const [head, taskSection = ''] = help.split('\nTask options (refused by tasks that do not take them):\n');

/** The help paragraph of `--flag`: its line and the indented lines under it. */
function paragraph(flag: string): string {
  const lines = taskSection.split('\n');
  const start = lines.findIndex((l) => new RegExp(`^  --${flag}\\b`).test(l));
  if (start < 0) return '';
  const end = lines.findIndex((l, i) => i > start && !/^ {3,}\S/.test(l));
  return lines
    .slice(start, end < 0 ? undefined : end)
    .map((l) => l.trim())
    .join(' ');
}

describe('eval --help from the task registry', () => {
  it('lists every task, and every option of every task with the default each task name runs with', () => {
    for (const d of EVAL_TASK_DEFINITIONS) {
      for (const name of d.names) expect(head, name).toMatch(new RegExp(`(^  |, )${name}(,|\\s)`, 'm'));
      for (const use of [...taskOptionUses(d), ...taskOptionUses(d, true)]) {
        const text = paragraph(use.option.flag);
        expect(text, `--${use.option.flag} of ${d.names[0]}`).not.toBe('');
        expect(text).toContain(use.option.help.split(' ').slice(0, 3).join(' '));
        for (const name of d.names) {
          const value = optionDefault(use, name);
          if (value === undefined) continue;
          const shown = formatOptionValue(value);
          const forms = [`${name} ${shown}`, `(default ${shown})`, `${shown} (default)`];
          expect(
            forms.some((f) => text.includes(f)),
            `--${use.option.flag}: ${name}'s default ${shown} in "${text}"`,
          ).toBe(true);
        }
      }
    }
  });

  it('lists the tasks in registry order; --limit names those that count per group', () => {
    const at = EVAL_TASK_DEFINITIONS.map((d) => head.search(new RegExp(`^  ${d.names[0]}(,|\\s)`, 'm')));
    expect(
      at.every((p, i) => p >= 0 && (i === 0 || p > at[i - 1])),
      `${at}`,
    ).toBe(true);
    const limit = head.slice(head.indexOf('  --limit N'), head.indexOf('  --shard I/N'));
    for (const d of EVAL_TASK_DEFINITIONS.filter((t) => t.limitPer !== undefined))
      for (const word of [d.limitPer as string, ...d.names]) expect(limit, d.names[0]).toContain(word);
  });

  it("lists the loss task's own options", () => {
    expect(head).toContain('  loss');
    for (const flag of ['format', 'max-length', 'train-on-source'])
      expect(paragraph(flag), flag).not.toBe('');
  });
});

describe('eval refuses task options given to a task that does not take them', () => {
  it('names the flag and the task, for every task option', () => {
    const modelRun = EVAL_TASK_DEFINITIONS.filter((d) => d.model === 'causal-lm');
    for (const option of TASK_OPTIONS) {
      const other = modelRun.find((d) => !taskOptionUses(d).some((u) => u.option.flag === option.flag));
      if (!other) continue;
      const value = option.kind === 'switch' ? [] : ['1'];
      const r = runCli([
        'eval',
        '--task',
        other.names[0],
        `--${option.flag}`,
        ...value,
        '--model',
        join(tmp, 'm'),
        '--data',
        join(tmp, 'd'),
        '--out',
        join(tmp, 'o.json'),
      ]);
      expect(r.status, r.stderr).toBe(2);
      expect(r.stderr).toContain(`--${option.flag} does not apply to --task ${other.names[0]}`);
    }
  });

  it("refuses a loss option for a registry task and a registry task's option for loss", () => {
    const base = ['--model', join(tmp, 'm'), '--data', join(tmp, 'd'), '--out', join(tmp, 'o.json')];
    const a = runCli(['eval', '--task', 'gsm8k', '--train-on-source', ...base]);
    expect(a.status, a.stderr).toBe(2);
    expect(a.stderr).toContain('--train-on-source does not apply to --task gsm8k');
    const b = runCli(['eval', '--task', 'loss', '--format', 'text', '--num-beams', '2', ...base]);
    expect(b.status, b.stderr).toBe(2);
    expect(b.stderr).toContain('--num-beams does not apply to --task loss');
  });
});
