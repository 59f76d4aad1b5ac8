import { ShareloraError } from '@sharelora/core';

/**
 * The `code` of a {@link TokenizerError}: which of the tokenizer's files is missing or unusable.
 */
export type TokenizerErrorCode =
  /** tokenizer.json (or tokenizer_config.json / chat_template.jinja when required) does not exist. */
  | 'NO_TOKENIZER'
  /** A tokenizer file that is not JSON or that @huggingface/tokenizers cannot build a tokenizer from. */
  | 'BAD_TOKENIZER'
  /** applyChatTemplate on a tokenizer without a chat template. */
  | 'NO_CHAT_TEMPLATE'
  /** A chat template that does not parse or fails while rendering (raise_exception included). */
  | 'BAD_CHAT_TEMPLATE';

/** A tokenizer that cannot be loaded or used. The one-line message starts with the file at fault. */
export class TokenizerError extends ShareloraError {
  declare readonly code: TokenizerErrorCode;

  constructor(
    code: TokenizerErrorCode,
    readonly path: string,
    detail: string,
    options: { cause?: unknown } = {},
  ) {
    super(code, `${path}: ${detail.replace(/[\r\n]+/g, ' ')}`);
    if (options.cause !== undefined) this.cause = options.cause;
  }
}
