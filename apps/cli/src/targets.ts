import {
  AdapterError,
  DEFAULT_TARGETS,
  type LinearModuleInfo,
  RECOMMENDED,
  resolveTargets,
  TARGET_ALIASES,
} from '@sharelora/adapters';
import { UsageError } from './cli-error.js';

/** The --targets lines of every command's help, from the adapters' one table of short names. */
export const TARGETS_HELP = `comma-separated (default ${DEFAULT_TARGETS.join(',')}): the short names
                         ${[...Object.keys(TARGET_ALIASES), 'all'].join(', ')}
                         (q, k, v, o: attention; fc1, fc2: GPT-2/RoBERTa MLP; gate, up, down: LLaMA MLP;
                         qkv: GPT-2's whole c_attn; all: every linear module in the layers), or module
                         names, e.g. self_attn.q_proj, c_attn[q,v]`;

/** The method, rank and alpha defaults as the help and the run header state them. */
export const RECOMMENDED_TEXT = `${RECOMMENDED.method}, r ${RECOMMENDED.r}, alpha ${RECOMMENDED.alpha} (the ShareLoRA paper's recommended setting)`;

/** A --targets list resolved against the model's linear modules; a name that selects nothing is a usage error. */
export function targetsFlag(
  modules: readonly LinearModuleInfo[],
  targets: readonly string[] | undefined,
): string[] {
  try {
    return resolveTargets(modules, targets ?? DEFAULT_TARGETS);
  } catch (e) {
    if (e instanceof AdapterError)
      throw new UsageError(`--targets ${(targets ?? DEFAULT_TARGETS).join(',')}: ${e.message}`);
    throw e;
  }
}
