/**
 * Incremental detokenisation for streaming. Decoding tokens one at a time is wrong twice over: a
 * character split across byte tokens (SentencePiece byte fallback, byte-level BPE) decodes to U+FFFD
 * halves, and decoders that strip a leading space would eat every token's space. So each step decodes
 * a short window (the tokens last emitted plus the new ones) and emits what it adds beyond the
 * window's already-emitted prefix, holding text back while it ends in an incomplete UTF-8 sequence.
 */

/** Tokens of the prompt kept as left context: enough for any decoder's leading-space handling. */
const CONTEXT_TOKENS = 8;
const REPLACEMENT = '\uFFFD';

/** Options of {@link StreamDecoder} and {@link Tokenizer.streamDecoder}. */
export interface StreamDecoderOptions {
  /**
   * Tokens already shown (the prompt). The first new token is decoded after them, so it keeps its
   * leading space as in the decoded whole; without context the text starts as decode() would.
   */
  context?: ArrayLike<number>;
  /** Leave special tokens out of the text (default true). */
  skipSpecialTokens?: boolean;
}

interface Decodes {
  decode(ids: ArrayLike<number>, opts?: { skipSpecialTokens?: boolean }): string;
}

/**
 * Turns generated token ids into text one token at a time, so that the concatenated pieces equal
 * decoding the whole continuation: each {@link StreamDecoder.push} decodes a short window of recent
 * tokens and returns only the new text, holding back a character whose bytes are still incomplete.
 * {@link generate} streams `onText` with it; get one from {@link Tokenizer.streamDecoder}.
 */
export class StreamDecoder {
  private readonly ids: number[];
  /** ids[start, read) were emitted (they are the left context); ids[read, ...) are not yet. */
  private start = 0;
  private read: number;
  private readonly skip: boolean;

  /**
   * `tokenizer`: anything with a `decode(ids, { skipSpecialTokens })`, usually a {@link Tokenizer}.
   */
  constructor(
    private readonly tokenizer: Decodes,
    opts: StreamDecoderOptions = {},
  ) {
    const ctx = Array.from(opts.context ?? []);
    this.ids = ctx.slice(Math.max(0, ctx.length - CONTEXT_TOKENS));
    this.read = this.ids.length;
    this.skip = opts.skipSpecialTokens ?? true;
  }

  /** Adds a token; returns the text it completes ('' while a character is still incomplete). */
  push(id: number): string {
    this.ids.push(id);
    const full = this.decode(this.start, this.ids.length);
    if (full.endsWith(REPLACEMENT)) return '';
    return this.advance(full);
  }

  /** Whatever is held back (an incomplete character decodes to U+FFFD); call at the end. */
  flush(): string {
    return this.read < this.ids.length ? this.advance(this.decode(this.start, this.ids.length)) : '';
  }

  private advance(full: string): string {
    const prefix = this.decode(this.start, this.read);
    this.start = this.read;
    this.read = this.ids.length;
    // Decoders only ever append past the prefix; if one rewrote it, emitting the tail is the best left.
    return full.slice(prefix.length);
  }

  private decode(from: number, to: number): string {
    return this.tokenizer.decode(this.ids.slice(from, to), { skipSpecialTokens: this.skip });
  }
}
