/**
 * Small real tokenizers for the presets, as tokenizer.json + tokenizer_config.json that
 * @huggingface/tokenizers and transformers load: byte-level BPE (GPT-2 / RoBERTa layout: 256 byte
 * tokens, a few English merges, the model's special tokens) and, for LLaMA, a SentencePiece-style
 * BPE with byte fallback (<unk>, <s>, </s>, <0x00>..<0xFF>, ▁-prefixed pieces).
 */
import {
  hfTokenizerFiles,
  type SentencePiece,
  type SentencePieceVocab,
  TokenType,
} from '../import/tokenizer.js';

export interface PresetTokenizer {
  tokenizerJson: Record<string, unknown>;
  tokenizerConfig: Record<string, unknown>;
  vocabSize: number;
  bosTokenId: number;
  eosTokenId: number;
  padTokenId: number | null;
}

/** Frequent English pairs, in merge order; each result is a new token (space written as a marker). */
const MERGES: ReadonlyArray<[string, string]> = [
  [' ', 't'],
  ['h', 'e'],
  [' ', 'a'],
  ['i', 'n'],
  [' t', 'he'],
  ['e', 'r'],
  ['o', 'n'],
  [' ', 's'],
  ['r', 'e'],
  [' ', 'w'],
  ['a', 'n'],
  [' ', 'o'],
  ['o', 'u'],
  ['e', 'd'],
  [' ', 'c'],
  ['i', 's'],
  ['in', 'g'],
  ['n', 'd'],
  [' a', 'nd'],
  ['a', 't'],
  ['o', 'r'],
  ['e', 'n'],
  [' ', 'b'],
  [' ', 'l'],
];

/**
 * GPT-2's byte -> printable character table: printable Latin-1 bytes stand for themselves, the
 * others (controls, space, ...) map to U+0100 onwards in byte order. Listed in GPT-2's vocabulary
 * order (the self-mapped bytes first).
 */
function byteTokens(): Array<[byte: number, char: string]> {
  const selfMapped = (b: number) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  const mapped: Array<[number, string]> = [];
  const shifted: Array<[number, string]> = [];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (selfMapped(b)) mapped.push([b, String.fromCharCode(b)]);
    else shifted.push([b, String.fromCharCode(256 + n++)]);
  }
  return [...mapped, ...shifted];
}

interface Special {
  content: string;
  id: number;
  lstrip?: boolean;
}

const specialProps = (s: Special) => ({
  content: s.content,
  single_word: false,
  lstrip: s.lstrip ?? false,
  rstrip: false,
  normalized: false,
  special: true,
});

const byteLevelStep = (addPrefixSpace: boolean, trimOffsets: boolean) => ({
  type: 'ByteLevel',
  add_prefix_space: addPrefixSpace,
  trim_offsets: trimOffsets,
  use_regex: true,
});

/**
 * Byte-level BPE: `leading` special tokens, the 256 byte tokens, the merges' results, then
 * `trailing` special tokens. Returns tokenizer.json for a given post-processor.
 */
function byteLevel(leading: string[], trailing: Array<Omit<Special, 'id'>>) {
  const table = byteTokens();
  const charOf = new Map(table);
  const toChars = (s: string) => [...new TextEncoder().encode(s)].map((b) => charOf.get(b)).join('');
  const vocab: Record<string, number> = {};
  const add = (tok: string): number => {
    vocab[tok] = Object.keys(vocab).length;
    return vocab[tok];
  };
  const specials: Special[] = leading.map((content) => ({ content, id: add(content) }));
  for (const [, ch] of table) add(ch);
  const merges = MERGES.map(([a, b]) => [toChars(a), toChars(b)]);
  for (const [a, b] of merges) add(a + b);
  for (const s of trailing) specials.push({ ...s, id: add(s.content) });
  return {
    specials,
    vocabSize: Object.keys(vocab).length,
    decoderMap: Object.fromEntries(specials.map((s) => [String(s.id), specialProps(s)])),
    json: (postProcessor: Record<string, unknown>) => ({
      version: '1.0',
      truncation: null,
      padding: null,
      added_tokens: specials.map((s) => ({ id: s.id, ...specialProps(s) })),
      normalizer: null,
      pre_tokenizer: byteLevelStep(false, true),
      post_processor: postProcessor,
      decoder: byteLevelStep(true, true),
      model: {
        type: 'BPE',
        dropout: null,
        unk_token: null,
        continuing_subword_prefix: '',
        end_of_word_suffix: '',
        fuse_unk: false,
        byte_fallback: false,
        ignore_merges: false,
        vocab,
        merges,
      },
    }),
  };
}

export function gpt2Tokenizer(maxLength: number): PresetTokenizer {
  const eot = '<|endoftext|>';
  const t = byteLevel([], [{ content: eot }]);
  const id = t.specials[0].id;
  return {
    tokenizerJson: t.json(byteLevelStep(true, false)),
    tokenizerConfig: {
      add_bos_token: false,
      add_prefix_space: false,
      added_tokens_decoder: t.decoderMap,
      bos_token: eot,
      eos_token: eot,
      unk_token: eot,
      clean_up_tokenization_spaces: false,
      model_max_length: maxLength,
      tokenizer_class: 'GPT2Tokenizer',
    },
    vocabSize: t.vocabSize,
    bosTokenId: id,
    eosTokenId: id,
    padTokenId: null,
  };
}

export function robertaTokenizer(maxLength: number): PresetTokenizer {
  const t = byteLevel(['<s>', '<pad>', '</s>', '<unk>'], [{ content: '<mask>', lstrip: true }]);
  return {
    tokenizerJson: t.json({
      type: 'RobertaProcessing',
      sep: ['</s>', 2],
      cls: ['<s>', 0],
      trim_offsets: true,
      add_prefix_space: false,
    }),
    tokenizerConfig: {
      add_prefix_space: false,
      added_tokens_decoder: t.decoderMap,
      bos_token: '<s>',
      cls_token: '<s>',
      eos_token: '</s>',
      sep_token: '</s>',
      pad_token: '<pad>',
      unk_token: '<unk>',
      mask_token: '<mask>',
      clean_up_tokenization_spaces: false,
      errors: 'replace',
      trim_offsets: true,
      model_max_length: maxLength,
      tokenizer_class: 'RobertaTokenizer',
    },
    vocabSize: t.vocabSize,
    bosTokenId: 0,
    eosTokenId: 2,
    padTokenId: 1,
  };
}

/** LLaMA 1/2-style vocabulary: specials, byte pieces, characters, then merged pieces by falling score. */
export function llamaTokenizer(maxLength: number): PresetTokenizer {
  const SPACE = '\u2581';
  const piece = (p: string, type: number, score = 0): SentencePiece => ({ piece: p, type, score });
  const chars = [SPACE, ...'etaoinshrdlucmfwypvbgkjqxz', ...".,'!?"];
  const merged = MERGES.map(([a, b]) => (a + b).replaceAll(' ', SPACE));
  const normal = [...merged, ...chars];
  const v: SentencePieceVocab = {
    pieces: [
      piece('<unk>', TokenType.UNKNOWN),
      piece('<s>', TokenType.CONTROL),
      piece('</s>', TokenType.CONTROL),
      ...Array.from({ length: 256 }, (_, b) =>
        piece(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`, TokenType.BYTE),
      ),
      ...normal.map((p, i) => piece(p, TokenType.NORMAL, -i)),
    ],
    unkId: 0,
    bosId: 1,
    eosId: 2,
    padId: null,
    addBos: true,
    addEos: false,
    addDummyPrefix: true,
  };
  const files = hfTokenizerFiles(v, {
    modelMaxLength: maxLength,
    fail: (detail) => {
      throw new Error(`llama preset tokenizer: ${detail}`);
    },
  });
  return {
    tokenizerJson: files.tokenizerJson,
    tokenizerConfig: files.tokenizerConfig,
    vocabSize: v.pieces.length,
    bosTokenId: 1,
    eosTokenId: 2,
    padTokenId: null,
  };
}
