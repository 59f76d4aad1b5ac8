/**
 * What the data pipeline needs from a tokenizer. Structural, so @sharelora/models' wrapper around
 * @huggingface/tokenizers (or any other) satisfies it without this package depending on one.
 */
export interface TextTokenizer {
  /**
   * Token ids of `text`. `addSpecialTokens` (default true) applies the tokenizer's post-processor
   * (BOS, or RoBERTa's <s> … </s>); `pair` encodes a second segment the way the tokenizer joins
   * pairs (RoBERTa: <s> A </s></s> B </s>).
   */
  encode(text: string, opts?: { addSpecialTokens?: boolean; pair?: string }): number[];
  /** The BOS id the tokenizer config prepends (add_bos_token), or null when it prepends none (GPT-2). */
  bosId: number | null;
  /** End-of-sequence ids; the first is the tokenizer's eos_token, the one appended to responses. */
  eosIds: number[];
  /** The pad id, or null when the tokenizer has none (LLaMA). */
  padId: number | null;
}

/** The pad id batches use: the tokenizer's, else its EOS (padding is masked, so the id only has to exist). */
export function padIdOf(tok: TextTokenizer): number {
  return tok.padId ?? tok.eosIds[0] ?? 0;
}
