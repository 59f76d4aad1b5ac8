/**
 * Test support: where the real data lives, and real tokenizers wrapped as TextTokenizer (the
 * stories260K SentencePiece vocabulary, converted by @sharelora/models' importer, and a byte-level
 * BPE with RoBERTa's post-processor).
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Tokenizer } from '@huggingface/tokenizers';
import { importLlama2c } from '@sharelora/models';
import type { TextTokenizer } from '../src/index.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const DATA_DIR = process.env.SHARELORA_DATA ?? resolve(repoRoot, '../shared/data');

/**
 * True when every path exists under DATA_DIR. Missing data fails in CI (CI=true) and otherwise
 * skips the caller's tests with a loud warning.
 */
export function haveData(...paths: string[]): boolean {
  const missing = paths.map((p) => join(DATA_DIR, p)).filter((p) => !existsSync(p));
  if (missing.length === 0) return true;
  if (process.env.CI === 'true') {
    throw new Error(
      `real data missing: ${missing.join(', ')} (set SHARELORA_DATA); CI=true makes this an error`,
    );
  }
  console.warn(
    `\n[SKIPPED] real data missing: ${missing.join(', ')}; set SHARELORA_DATA to run these tests\n`,
  );
  return false;
}

export const data = (...parts: string[]) => join(DATA_DIR, ...parts);

/** @huggingface/tokenizers behind the TextTokenizer interface, with ids from tokenizer_config.json. */
export class HfTextTokenizer implements TextTokenizer {
  constructor(
    private readonly tok: Tokenizer,
    readonly bosId: number | null,
    readonly eosIds: number[],
    readonly padId: number | null,
  ) {}

  static fromJson(json: Record<string, unknown>, config: Record<string, unknown>): HfTextTokenizer {
    const tok = new Tokenizer(json, config);
    const id = (key: string): number | null => {
      const name = config[key];
      return typeof name === 'string' ? (tok.token_to_id(name) ?? null) : null;
    };
    const eos = id('eos_token');
    return new HfTextTokenizer(
      tok,
      config.add_bos_token === true ? id('bos_token') : null,
      eos === null ? [] : [eos],
      id('pad_token'),
    );
  }

  encode(text: string, opts: { addSpecialTokens?: boolean; pair?: string } = {}): number[] {
    return this.tok.encode(text, {
      text_pair: opts.pair ?? null,
      add_special_tokens: opts.addSpecialTokens ?? true,
    }).ids;
  }

  decode(ids: number[]): string {
    return this.tok.decode(ids);
  }

  tokens(text: string): string[] {
    return this.tok.encode(text, { add_special_tokens: false }).tokens;
  }
}

/** The stories260K tokenizer (tok512.bin → tokenizer.json by importLlama2c). Needs haveData('stories260K'). */
export async function storiesTokenizer(): Promise<HfTextTokenizer> {
  const dir = await mkdtemp(join(tmpdir(), 'sharelora-train-tok-'));
  try {
    const s = data('stories260K');
    await importLlama2c(join(s, 'stories260K.bin'), { tokenizerPath: join(s, 'tok512.bin'), outDir: dir });
    const json = JSON.parse(await readFile(join(dir, 'tokenizer.json'), 'utf8'));
    const config = JSON.parse(await readFile(join(dir, 'tokenizer_config.json'), 'utf8'));
    return HfTextTokenizer.fromJson(json, config);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * RoBERTa's layout without its 50K merges: specials <s> <pad> </s> <unk>, the 256 byte-level
 * characters (GPT-2's printable mapping of bytes), no merges, and the RobertaProcessing
 * post-processor, so pairs encode as <s> A </s></s> B </s>.
 */
export function robertaLikeTokenizer(): HfTextTokenizer {
  const printable = (b: number) =>
    (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const chars: string[] = [];
  let shifted = 0;
  for (let b = 0; b < 256; b++) chars[b] = String.fromCharCode(printable(b) ? b : 256 + shifted++);
  const specials = ['<s>', '<pad>', '</s>', '<unk>'];
  const vocab = Object.fromEntries([...specials, ...chars].map((t, i) => [t, i]));
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  const json = {
    version: '1.0',
    added_tokens: specials.map((content, id) => ({
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: {
      type: 'RobertaProcessing',
      sep: ['</s>', 2],
      cls: ['<s>', 0],
      trim_offsets: true,
      add_prefix_space: false,
    },
    decoder: byteLevel,
    model: {
      type: 'BPE',
      vocab,
      merges: [],
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
    },
  };
  const config = {
    bos_token: '<s>',
    eos_token: '</s>',
    pad_token: '<pad>',
    unk_token: '<unk>',
    tokenizer_class: 'RobertaTokenizer',
  };
  return HfTextTokenizer.fromJson(json, config);
}
