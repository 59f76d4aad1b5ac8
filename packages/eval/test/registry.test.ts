/** The task registry: one definition per task name, every one runnable or mergeable as it says. */
import { describe, expect, it } from 'vitest';
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

describe('task registry', () => {
  it('names each task once; the runner and GLUE lists are derived from it', () => {
    const names = EVAL_TASK_DEFINITIONS.flatMap((d) => d.names);
    expect(new Set(names).size).toBe(names.length);
    expect([...EVAL_TASKS, ...GLUE_EVAL_TASKS].sort()).toEqual([...names].sort());
    for (const name of names) expect(taskDefinition(name)?.names).toContain(name);
    expect(taskDefinition('no-such-task')).toBeUndefined();
  });

  it('causal-LM tasks run, every task can recompute its metrics, file scorers name their flag', () => {
    for (const d of EVAL_TASK_DEFINITIONS) {
      expect(typeof d.metrics, d.names[0]).toBe('function');
      expect(d.sampleFields.length, d.names[0]).toBeGreaterThan(0);
      if (d.model === 'causal-lm') expect(typeof d.run, d.names[0]).toBe('function');
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
