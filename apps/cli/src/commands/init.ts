import { init as initDevice, shutdown } from '@sharelora/core/node';
import { type Arch, initPreset, PRESET_ARCHS, PRESET_NAMES, type PresetName } from '@sharelora/models';
import { oneOf, parseFlags } from '../args.js';
import { UsageError } from '../cli-error.js';

export const initHelp = `Usage: sharelora init --arch ${PRESET_ARCHS.join('|')} --preset ${PRESET_NAMES.join('|')} --out DIR [--seed N] [--json]

Writes a randomly initialised model as a Hugging Face directory (config.json, model.safetensors,
tokenizer.json, tokenizer_config.json, and generation_config.json for causal models) that every
sharelora command, transformers and @huggingface/tokenizers load. For tests, examples and trying
things out in seconds. The tokenizer is a small real one: byte-level BPE for GPT-2 and RoBERTa,
byte-fallback BPE for LLaMA.

Presets:
  gpt2     tiny: 2 layers, d_model 64     small: 4 layers, d_model 128
  roberta  tiny: 2 layers, d_model 64     small: 4 layers, d_model 128 (masked-LM head)
  llama    tiny: LLaMA 2 style, 2 layers, d_model 64, 4 heads / 2 kv heads, untied output
           small: LLaMA 3 style, 4 layers, d_model 128, 8 heads / 2 kv heads, head_dim 32,
                  llama3 RoPE scaling, tied output

Options:
  --arch ARCH       ${PRESET_ARCHS.join(', ')}
  --preset NAME     ${PRESET_NAMES.join(', ')}
  --out DIR         output directory (created; model files in it are replaced)
  --seed N          seed of the random weights, a non-negative integer (default 0)
  --json            print one JSON document on stdout
  -h, --help        show this help`;

/** A required flag from a fixed set. */
function requiredOneOf<T extends string>(flag: string, value: string | undefined, allowed: readonly T[]): T {
  const v = oneOf(flag, value, allowed);
  if (v === undefined) throw new UsageError(`sharelora init: --${flag} is required (${allowed.join(', ')})`);
  return v;
}

export async function init(argv: string[]): Promise<number> {
  const { values } = parseFlags('init', argv, {
    arch: { type: 'string' },
    preset: { type: 'string' },
    out: { type: 'string' },
    seed: { type: 'string' },
    json: { type: 'boolean' },
  });
  if (values.help) {
    console.log(initHelp);
    return 0;
  }
  const arch = requiredOneOf<Arch>('arch', values.arch, PRESET_ARCHS);
  const preset = requiredOneOf<PresetName>('preset', values.preset, PRESET_NAMES);
  if (!values.out) throw new UsageError('sharelora init: --out DIR is required');
  const seed = Number(values.seed ?? 0);
  if (!Number.isSafeInteger(seed) || seed < 0)
    throw new UsageError(`--seed must be a non-negative integer, got "${values.seed}"`);

  await initDevice();
  try {
    const r = await initPreset({ arch, preset, outDir: values.out, seed });
    if (values.json) {
      console.log(
        JSON.stringify(
          { arch, preset, seed, outDir: r.outDir, parameters: r.parameters, files: r.files },
          null,
          2,
        ),
      );
    } else {
      console.log(
        `wrote ${arch} ${preset} (seed ${seed}, ${r.parameters.toLocaleString('en-US')} parameters) to ${r.outDir}`,
      );
      console.log(`files: ${r.files.join(', ')}`);
    }
    return 0;
  } finally {
    shutdown();
  }
}
