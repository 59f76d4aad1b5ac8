/**
 * SentencePiece BPE vocabularies (LLaMA 1/2 style) from llama2.c `tokenizer.bin`, a sentencepiece
 * `.model`, or GGUF metadata, written as the tokenizer.json / tokenizer_config.json pair that HF's
 * LlamaTokenizerFast uses: a BPE model with byte fallback whose merges are derived from the piece
 * scores, so BPE by merge rank reproduces sentencepiece's merge-by-highest-score.
 */
import { ImportError } from './errors.js';
import type { BinaryFile } from './file.js';

/** sentencepiece's piece types (GGUF's tokenizer.ggml.token_type uses the same numbers). */
export const TokenType = {
  NORMAL: 1,
  UNKNOWN: 2,
  CONTROL: 3,
  USER_DEFINED: 4,
  UNUSED: 5,
  BYTE: 6,
} as const;

export interface SentencePiece {
  piece: string;
  score: number;
  type: number;
}

export interface SentencePieceVocab {
  /** Indexed by token id. Whitespace is "▁" (U+2581), byte pieces are "<0xHH>". */
  pieces: SentencePiece[];
  unkId: number;
  bosId: number;
  eosId: number;
  padId: number | null;
  addBos: boolean;
  addEos: boolean;
  /** sentencepiece's add_dummy_prefix: a "▁" is prepended to the text before encoding. */
  addDummyPrefix: boolean;
  chatTemplate?: string;
}

const SPACE = '\u2581';
/** sentencepiece's byte-fallback pieces, which tokenizer.bin keeps as text. */
const BYTE_PIECE = /^<0x[0-9A-F]{2}>$/;

// ---------------------------------------------------------------------------------------------
// Readers
// ---------------------------------------------------------------------------------------------

/**
 * llama2.c's tokenizer.bin (tokenizer.py export): i32 max_token_length, then per token f32 score,
 * i32 byte length and the UTF-8 bytes. The export turned "▁" into " " and the BOS/EOS pieces into
 * "\n<s>\n" / "\n</s>\n"; both are undone here. The file does not store its token count, so the
 * entries run to the end of the file; `vocabSize` (the model's) is checked against it.
 */
export async function readLlama2cTokenizer(
  file: BinaryFile,
  vocabSize?: number,
): Promise<SentencePieceVocab> {
  const bytes = await file.readAt(0, file.size);
  const dv = new DataView(bytes.buffer);
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  if (bytes.length < 4) file.fail('TRUNCATED', 'shorter than the 4-byte llama2.c tokenizer header');
  const maxLen = dv.getInt32(0, true);
  const pieces: SentencePiece[] = [];
  let at = 4;
  while (at < bytes.length) {
    const id = pieces.length;
    if (at + 8 > bytes.length) file.fail('TRUNCATED', `token ${id}: the file ends inside its score/length`);
    const score = dv.getFloat32(at, true);
    const len = dv.getInt32(at + 4, true);
    at += 8;
    if (len < 0 || len > maxLen || at + len > bytes.length) {
      file.fail(
        len > maxLen ? 'BAD_HEADER' : 'TRUNCATED',
        `token ${id}: length ${len} does not fit (max_token_length ${maxLen}, ${bytes.length - at} bytes left); ` +
          'is this a llama2.c tokenizer.bin?',
      );
    }
    let text: string;
    try {
      text = utf8.decode(bytes.subarray(at, at + len));
    } catch {
      file.fail('BAD_HEADER', `token ${id} is not valid UTF-8`);
    }
    at += len;
    if (text === '\n<s>\n') pieces.push({ piece: '<s>', score, type: TokenType.CONTROL });
    else if (text === '\n</s>\n') pieces.push({ piece: '</s>', score, type: TokenType.CONTROL });
    else if (text === '<unk>') pieces.push({ piece: text, score, type: TokenType.UNKNOWN });
    else if (BYTE_PIECE.test(text)) pieces.push({ piece: text, score, type: TokenType.BYTE });
    else pieces.push({ piece: text.replaceAll(' ', SPACE), score, type: TokenType.NORMAL });
  }
  if (vocabSize !== undefined && pieces.length !== vocabSize) {
    file.fail('BAD_HEADER', `has ${pieces.length} tokens but the model's vocab_size is ${vocabSize}`);
  }
  const find = (p: string) => pieces.findIndex((x) => x.piece === p);
  const [unkId, bosId, eosId] = [find('<unk>'), find('<s>'), find('</s>')];
  if (unkId < 0 || bosId < 0 || eosId < 0) {
    file.fail(
      'BAD_HEADER',
      'the <unk>, <s> and </s> tokens were not all found; is this a llama2.c tokenizer.bin?',
    );
  }
  return { pieces, unkId, bosId, eosId, padId: null, addBos: true, addEos: false, addDummyPrefix: true };
}

/** Minimal protobuf wire reader: just what sentencepiece_model.proto's fields need. */
class ProtoReader {
  pos: number;
  constructor(
    private readonly buf: Uint8Array,
    private readonly file: BinaryFile,
    start = 0,
    readonly end = buf.length,
  ) {
    this.pos = start;
  }
  private bad(): never {
    return this.file.fail(
      'BAD_HEADER',
      `malformed protobuf at byte ${this.pos}; is this a sentencepiece .model?`,
    );
  }
  varint(): number {
    let v = 0;
    for (let shift = 0; shift < 64; shift += 7) {
      if (this.pos >= this.end) this.bad();
      const b = this.buf[this.pos++];
      // Numbers above 2^53 are not used by these fields; precision loss there is harmless.
      v += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return v;
    }
    return this.bad();
  }
  /** int32 fields are sign-extended to 64 bits on the wire. */
  int32(): number {
    const v = this.varint();
    return v >= 2 ** 63 ? v - 2 ** 64 : v;
  }
  /** [start, end) of a length-delimited field's payload. */
  bytes(): [number, number] {
    const len = this.varint();
    if (this.pos + len > this.end) this.bad();
    this.pos += len;
    return [this.pos - len, this.pos];
  }
  float(): number {
    if (this.pos + 4 > this.end) this.bad();
    const v = new DataView(this.buf.buffer, this.buf.byteOffset + this.pos, 4).getFloat32(0, true);
    this.pos += 4;
    return v;
  }
  skip(wire: number): void {
    if (wire === 0) this.varint();
    else if (wire === 1) this.pos += 8;
    else if (wire === 2) this.bytes();
    else if (wire === 5) this.pos += 4;
    else this.bad();
    if (this.pos > this.end) this.bad();
  }
  /** Visit each field of the message; `fn` must consume the field or return false to skip it. */
  fields(fn: (field: number, wire: number) => boolean): void {
    while (this.pos < this.end) {
      const key = this.varint();
      const wire = key % 8;
      if (!fn(Math.floor(key / 8), wire)) this.skip(wire);
    }
  }
  sub(range: [number, number]): ProtoReader {
    return new ProtoReader(this.buf, this.file, range[0], range[1]);
  }
}

/** A sentencepiece `.model` (ModelProto); only BPE models (LLaMA's kind) convert to an HF BPE. */
export async function readSentencePieceModel(
  file: BinaryFile,
  vocabSize?: number,
): Promise<SentencePieceVocab> {
  const buf = await file.readAt(0, file.size);
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  const pieces: SentencePiece[] = [];
  // Proto2 defaults of TrainerSpec / NormalizerSpec.
  let modelType = 1;
  let [unkId, bosId, eosId, padId] = [0, 1, 2, -1];
  let addDummyPrefix = true;
  const top = new ProtoReader(buf, file);
  top.fields((field, wire) => {
    if (wire !== 2) return false;
    const r = top.sub(top.bytes());
    if (field === 1) {
      const p: SentencePiece = { piece: '', score: 0, type: TokenType.NORMAL };
      r.fields((f, w) => {
        if (f === 1 && w === 2) {
          try {
            p.piece = utf8.decode(buf.subarray(...r.bytes()));
          } catch {
            file.fail('BAD_HEADER', `piece ${pieces.length} is not valid UTF-8`);
          }
        } else if (f === 2 && w === 5) p.score = r.float();
        else if (f === 3 && w === 0) p.type = r.varint();
        else return false;
        return true;
      });
      pieces.push(p);
    } else if (field === 2) {
      r.fields((f, w) => {
        if (w !== 0) return false;
        if (f === 3) modelType = r.varint();
        else if (f === 40) unkId = r.int32();
        else if (f === 41) bosId = r.int32();
        else if (f === 42) eosId = r.int32();
        else if (f === 43) padId = r.int32();
        else return false;
        return true;
      });
    } else if (field === 3) {
      r.fields((f, w) => {
        if (f !== 3 || w !== 0) return false;
        addDummyPrefix = r.varint() !== 0;
        return true;
      });
    }
    return true;
  });
  if (pieces.length === 0) file.fail('BAD_HEADER', 'no pieces found; is this a sentencepiece .model?');
  if (modelType !== 2) {
    file.fail(
      'UNSUPPORTED',
      `sentencepiece model_type ${modelType} is not BPE (2); only LLaMA-style BPE converts`,
    );
  }
  if (vocabSize !== undefined && pieces.length !== vocabSize) {
    file.fail('BAD_HEADER', `has ${pieces.length} pieces but the model's vocab_size is ${vocabSize}`);
  }
  for (const [what, id] of [
    ['unk_id', unkId],
    ['bos_id', bosId],
    ['eos_id', eosId],
  ] as const) {
    if (id < 0 || id >= pieces.length) file.fail('BAD_HEADER', `${what} ${id} is outside the vocabulary`);
  }
  return {
    pieces,
    unkId,
    bosId,
    eosId,
    padId: padId >= 0 && padId < pieces.length ? padId : null,
    addBos: true,
    addEos: false,
    addDummyPrefix,
  };
}

/** The GGUF metadata the tokenizer needs (values as GgufFile returns them). */
export type GgufTokenizerMetadata = ReadonlyMap<string, unknown>;

/**
 * The tokenizer embedded in a GGUF (`tokenizer.ggml.*`). Returns a reason string instead when it
 * is absent or of a kind this converter does not handle (e.g. "gpt2" byte-level BPE).
 */
export function ggufTokenizer(path: string, meta: GgufTokenizerMetadata): SentencePieceVocab | string {
  const model = meta.get('tokenizer.ggml.model');
  if (model === undefined) return 'the GGUF has no embedded tokenizer';
  if (model !== 'llama') return `its tokenizer.ggml.model "${String(model)}" is not supported (only "llama")`;
  const bad = (detail: string): never => {
    throw new ImportError('gguf', path, 'BAD_HEADER', detail);
  };
  const tokens = meta.get('tokenizer.ggml.tokens');
  if (!Array.isArray(tokens) || !tokens.every((t) => typeof t === 'string')) {
    return bad('tokenizer.ggml.tokens is missing or not an array of strings');
  }
  const numbers = (key: string, fallback: number): number[] => {
    const v = meta.get(key);
    if (v === undefined) return tokens.map(() => fallback);
    if (!Array.isArray(v) || v.length !== tokens.length || !v.every((x) => typeof x === 'number')) {
      return bad(`${key} must be a number array as long as tokenizer.ggml.tokens (${tokens.length})`);
    }
    return v as number[];
  };
  const scores = numbers('tokenizer.ggml.scores', 0);
  const types = numbers('tokenizer.ggml.token_type', TokenType.NORMAL);
  const id = (key: string, fallback: number | null): number | null => {
    const v = meta.get(key);
    // llama.cpp writes u32 -1 for "no such token".
    if (v === undefined || v === 0xffffffff || v === -1) return fallback;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v >= tokens.length) {
      return bad(`${key} = ${String(v)} is not a token id`);
    }
    return v;
  };
  const flag = (key: string, fallback: boolean): boolean => {
    const v = meta.get(key);
    return typeof v === 'boolean' ? v : fallback;
  };
  const template = meta.get('tokenizer.chat_template');
  return {
    pieces: tokens.map((piece, i) => ({ piece, score: scores[i], type: types[i] })),
    unkId: id('tokenizer.ggml.unknown_token_id', 0) as number,
    bosId: id('tokenizer.ggml.bos_token_id', 1) as number,
    eosId: id('tokenizer.ggml.eos_token_id', 2) as number,
    padId: id('tokenizer.ggml.padding_token_id', null),
    addBos: flag('tokenizer.ggml.add_bos_token', true),
    addEos: flag('tokenizer.ggml.add_eos_token', false),
    addDummyPrefix: flag('tokenizer.ggml.add_space_prefix', true),
    ...(typeof template === 'string' ? { chatTemplate: template } : {}),
  };
}

// ---------------------------------------------------------------------------------------------
// HF files
// ---------------------------------------------------------------------------------------------

/**
 * Merges as HF's SentencePieceExtractor derives them: every split of a piece into two pieces
 * that are both in the vocabulary, ordered by the merged piece's score (highest first), ties by
 * its id, then by the ids of the two parts. Only normal pieces are merge results, since
 * sentencepiece's BPE never produces control, byte, unused or user-defined pieces by merging.
 */
export function deriveMerges(pieces: readonly SentencePiece[]): [string, string][] {
  const ids = new Map(pieces.map((p, i) => [p.piece, i]));
  const all: { left: string; right: string; score: number; id: number; l: number; r: number }[] = [];
  pieces.forEach((p, id) => {
    if (p.type !== TokenType.NORMAL) return;
    // Split by code points, not UTF-16 units, so no half of a surrogate pair is ever a part.
    const chars = Array.from(p.piece);
    for (let k = 1; k < chars.length; k++) {
      const left = chars.slice(0, k).join('');
      const right = chars.slice(k).join('');
      const l = ids.get(left);
      const r = ids.get(right);
      if (l !== undefined && r !== undefined) all.push({ left, right, score: p.score, id, l, r });
    }
  });
  all.sort((a, b) => b.score - a.score || a.id - b.id || a.l - b.l || a.r - b.r);
  return all.map((m) => [m.left, m.right]);
}

export interface HfTokenizerFiles {
  tokenizerJson: Record<string, unknown>;
  tokenizerConfig: Record<string, unknown>;
  mergeCount: number;
}

/** tokenizer.json and tokenizer_config.json for a LlamaTokenizerFast over `v`. */
export function hfTokenizerFiles(
  v: SentencePieceVocab,
  opts: { modelMaxLength?: number; fail: (detail: string) => never },
): HfTokenizerFiles {
  // A Map, then fromEntries: a piece named "__proto__" must stay an ordinary key.
  const ids = new Map<string, number>();
  v.pieces.forEach((p, i) => {
    const seen = ids.get(p.piece);
    if (seen !== undefined) opts.fail(`piece ${JSON.stringify(p.piece)} appears twice (ids ${seen}, ${i})`);
    ids.set(p.piece, i);
  });
  const vocab = Object.fromEntries(ids);
  const piece = (id: number) => v.pieces[id].piece;
  const [unk, bos, eos] = [piece(v.unkId), piece(v.bosId), piece(v.eosId)];
  // Control and unknown pieces are special; user-defined ones are matched whole but are ordinary text.
  const added = v.pieces
    .map((p, id) => ({ p, id }))
    .filter(
      ({ p }) =>
        p.type === TokenType.CONTROL || p.type === TokenType.UNKNOWN || p.type === TokenType.USER_DEFINED,
    )
    .map(({ p, id }) => ({
      id,
      content: p.piece,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: p.type !== TokenType.USER_DEFINED,
    }));
  const special = (name: string, typeId: number) => ({ SpecialToken: { id: name, type_id: typeId } });
  const seq = (name: 'A' | 'B', typeId: number) => ({ Sequence: { id: name, type_id: typeId } });
  const wrap = (name: 'A' | 'B', typeId: number) => [
    ...(v.addBos ? [special(bos, typeId)] : []),
    seq(name, typeId),
    ...(v.addEos ? [special(eos, typeId)] : []),
  ];
  const specialTokens: Record<string, { id: string; ids: number[]; tokens: string[] }> = {};
  if (v.addBos) specialTokens[bos] = { id: bos, ids: [v.bosId], tokens: [bos] };
  if (v.addEos) specialTokens[eos] = { id: eos, ids: [v.eosId], tokens: [eos] };
  const replace = (from: string, to: string) => ({ type: 'Replace', pattern: { String: from }, content: to });
  const merges = deriveMerges(v.pieces);
  const tokenizerJson = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    // HF's legacy LLaMA layout: sentencepiece's dummy prefix and whitespace escaping as normalizers.
    normalizer: {
      type: 'Sequence',
      normalizers: [...(v.addDummyPrefix ? [{ type: 'Prepend', prepend: SPACE }] : []), replace(' ', SPACE)],
    },
    pre_tokenizer: null,
    post_processor: {
      type: 'TemplateProcessing',
      single: wrap('A', 0),
      pair: [...wrap('A', 0), ...wrap('B', 1)],
      special_tokens: specialTokens,
    },
    decoder: {
      type: 'Sequence',
      decoders: [
        replace(SPACE, ' '),
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        ...(v.addDummyPrefix ? [{ type: 'Strip', content: ' ', start: 1, stop: 0 }] : []),
      ],
    },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: unk,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      ignore_merges: false,
      vocab,
      merges,
    },
  };
  const tokenizerConfig = {
    add_bos_token: v.addBos,
    add_eos_token: v.addEos,
    added_tokens_decoder: Object.fromEntries(added.map(({ id, ...rest }) => [String(id), { ...rest }])),
    bos_token: bos,
    eos_token: eos,
    unk_token: unk,
    pad_token: v.padId === null ? null : piece(v.padId),
    clean_up_tokenization_spaces: false,
    legacy: true,
    ...(opts.modelMaxLength === undefined ? {} : { model_max_length: opts.modelMaxLength }),
    sp_model_kwargs: {},
    spaces_between_special_tokens: false,
    tokenizer_class: 'LlamaTokenizerFast',
    use_default_system_prompt: false,
    ...(v.chatTemplate === undefined ? {} : { chat_template: v.chatTemplate }),
  };
  return { tokenizerJson, tokenizerConfig, mergeCount: merges.length };
}
