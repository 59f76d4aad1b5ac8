/** The task registry: one definition per task name, every one runnable or mergeable as it says. */
import { describe, expect, it } from 'vitest';
import { EVAL_TASK_DEFINITIONS, EVAL_TASKS, GLUE_EVAL_TASKS, taskDefinition } from '../src/index.js';

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
      if (d.fileScoring) expect(d.flags, d.names[0]).not.toContain(d.fileScoring.flag);
    }
  });
});
