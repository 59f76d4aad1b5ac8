export { TokenizerError, type TokenizerErrorCode } from './errors.js';
export { StreamDecoder, type StreamDecoderOptions } from './stream.js';
export {
  type ChatMessage,
  type ChatTemplateOptions,
  type DecodeOptions,
  type EncodeOptions,
  loadTokenizer,
  Tokenizer,
  type TokenizerSources,
} from './tokenizer.js';
