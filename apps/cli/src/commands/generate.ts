import { loadAdapter } from '@sharelora/adapters/node';
import { init, ShareloraError, shutdown } from '@sharelora/core/node';
import {
  type CausalLM,
  generate as generateText,
  loadModel,
  loadTokenizer,
  readConfig,
  readGenerationConfig,
  type Tokenizer,
} from '@sharelora/models';
import { applyPromptFormat, PROMPT_FORMATS, readPromptFormat } from '@sharelora/train';
import { intFlag, numberFlag, oneOf, parseFlags, quantizeFlag, quantizeHelp, seedFlag } from '../args.js';
import { asUsage, UsageError } from '../cli-error.js';
import { loadProgress, progressDone } from '../progress.js';

export const generateHelp = `Usage: sharelora generate --model DIR [--adapter DIR] --prompt TEXT [--max-new-tokens N]
                          [--temperature T] [--top-p P] [--top-k K] [--seed N] [--stop S]... [--chat] [--json]
                          [--template FORMAT | --no-template]
                          [--quantize nf4|fp4|int8]

Continues a prompt with a causal LM (GPT-2 or LLaMA family) using its KV cache, streaming the text to
stdout as it is generated (the prompt first). Sampling defaults come from the model's
generation_config.json (greedy unless it sets do_sample); the flags override them.

Options:
  --model DIR           Hugging Face model directory (config.json, safetensors, tokenizer.json)
  --adapter DIR         LoRA/ShareLoRA adapter directory (PEFT format) applied to the model
  --prompt TEXT         text to continue (encoded with the tokenizer's BOS as it specifies)
  --max-new-tokens N    most tokens to generate (default 128); generation also stops at the model's
                        context length (max_position_embeddings), and a longer prompt is refused
  --temperature T       0 = greedy (most likely token); higher samples more freely
  --top-p P             nucleus sampling: sample among the most likely tokens holding mass P (0 < P <= 1)
  --top-k K             sample among the K most likely tokens (0 = all)
  --seed N              seed of the sampler (default 0): same seed, same text
  --stop S              stop when the text contains S (not printed); repeat for several
  --chat                wrap the prompt as a user message in the model's chat template
  --template FORMAT     put the prompt in a training format's template: instruction (Alpaca, no
                        input), gsm8k ("Question: ...\nAnswer:"), e2e (an MR, "Meaning
                        representation: ...\nDescription:"), prompt-completion or text (as is).
                        Default: the format the --adapter was trained with (sharelora train saves it)
  --no-template         send the prompt as it is, even with such an adapter
  --json                print one JSON document {prompt, text, tokens, finishReason} instead of streaming
${quantizeHelp(24)}
  -h, --help            show this help`;

export async function generate(argv: string[]): Promise<number> {
  const { values } = parseFlags('generate', argv, {
    model: { type: 'string' },
    adapter: { type: 'string' },
    prompt: { type: 'string' },
    'max-new-tokens': { type: 'string' },
    temperature: { type: 'string' },
    'top-p': { type: 'string' },
    'top-k': { type: 'string' },
    seed: { type: 'string' },
    stop: { type: 'string', multiple: true },
    chat: { type: 'boolean' },
    json: { type: 'boolean' },
    quantize: { type: 'string' },
    template: { type: 'string' },
    'no-template': { type: 'boolean' },
  });
  if (values.help) {
    console.log(generateHelp);
    return 0;
  }
  if (!values.model) throw new UsageError('--model DIR is required (see sharelora generate --help)');
  if (values.prompt === undefined)
    throw new UsageError('--prompt TEXT is required (see sharelora generate --help)');
  const dir = values.model;
  const prompt = values.prompt;
  const temperature = numberFlag('temperature', values.temperature, (n) => n >= 0, 'a number >= 0');
  const topP = numberFlag('top-p', values['top-p'], (n) => n > 0 && n <= 1, 'a number in (0, 1]');
  const topK = numberFlag('top-k', values['top-k'], (n) => Number.isInteger(n) && n >= 0, 'an integer >= 0');
  const seed = seedFlag(values.seed);
  const quantize = quantizeFlag(values.quantize);

  // The cheap files first, so a broken directory fails before the GPU starts (config.json first: it
  // says best what is wrong with a --model that is not a model directory).
  await readConfig(dir).catch(asUsage);
  const tokenizer: Tokenizer = await loadTokenizer(dir).catch(asUsage);
  const defaults = await readGenerationConfig(dir).catch(asUsage);
  const maxNewTokens = intFlag('max-new-tokens', values['max-new-tokens'], defaults.maxNewTokens ?? 128);
  const explicit = oneOf('template', values.template, PROMPT_FORMATS);
  if (explicit && values['no-template']) throw new UsageError('give --template or --no-template, not both');
  if (explicit && values.chat) throw new UsageError('give --template or --chat, not both');
  const saved =
    values.adapter && !values['no-template'] && !values.chat
      ? await readPromptFormat(values.adapter).catch(asUsage)
      : null;
  const template = explicit ?? saved;
  if (saved && !explicit && !values.json)
    console.error(
      `sharelora generate: prompt in the adapter's ${saved} template (--no-template sends it as is)`,
    );
  let text = template ? applyPromptFormat(template, prompt) : prompt;
  if (values.chat) {
    try {
      text = tokenizer.applyChatTemplate([{ role: 'user', content: prompt }], { addGenerationPrompt: true });
    } catch (e) {
      throw new UsageError(`--chat: ${(e as Error).message}`);
    }
  }

  await init();
  let model: CausalLM | null = null;
  try {
    const loaded = await loadModel(dir, {
      quantize,
      onProgress: loadProgress(dir),
    })
      .catch(asUsage)
      .finally(progressDone);
    if (loaded.model.task !== 'causal-lm') {
      loaded.model.dispose();
      throw new UsageError(
        `--model ${dir}: a ${loaded.model.hfClass} cannot generate text (GPT-2 and LLaMA models can)`,
      );
    }
    model = loaded.model;
    if (values.adapter) {
      await loadAdapter(model, values.adapter).catch(asUsage);
      // Injected LoRA layers start in training mode (dropout on).
      model.eval();
    }
    const eosIds = [...new Set([...model.config.eosTokenIds, ...tokenizer.eosIds, ...defaults.eosIds])];
    const stream = !values.json;
    if (stream && !values.chat) process.stdout.write(text);
    const run = generateText(model, tokenizer, [text], {
      maxNewTokens,
      temperature: temperature ?? defaults.temperature,
      topP: topP ?? defaults.topP,
      topK: topK ?? defaults.topK,
      seed,
      stop: values.stop,
      eosIds,
      padId: tokenizer.padId ?? defaults.padId ?? undefined,
      // A chat template writes its own BOS.
      addSpecialTokens: !values.chat,
      onText: stream ? (_, piece) => process.stdout.write(piece) : undefined,
    });
    const [g] = await run.catch((e: unknown) => {
      // An empty prompt (no BOS to start from) or one longer than the model's positions.
      if (e instanceof ShareloraError && (e.code === 'BAD_ARGUMENT' || e.code === 'SEQUENCE_TOO_LONG'))
        throw new UsageError(`--prompt: ${e.message}`);
      throw e;
    });
    if (stream) process.stdout.write('\n');
    else
      console.log(
        JSON.stringify(
          { prompt, template, input: text, text: g.text, tokens: g.tokens, finishReason: g.finishReason },
          null,
          2,
        ),
      );
    return 0;
  } finally {
    model?.dispose();
    shutdown();
  }
}
