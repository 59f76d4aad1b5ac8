/**
 * A model directory's tokenizer: tokenizer.json run by @huggingface/tokenizers, with the special
 * tokens, BOS/EOS flags, clean-up setting and chat template of tokenizer_config.json (or
 * chat_template.jinja), the template rendered by @huggingface/jinja.
 */
import { readFile, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Template } from '@huggingface/jinja';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { TokenizerError } from './errors.js';
import { StreamDecoder, type StreamDecoderOptions } from './stream.js';

/** Options of {@link Tokenizer.encode}. */
export interface EncodeOptions {
  /**
   * Add the tokenizer's special tokens (default true): BOS/EOS as tokenizer_config.json's
   * add_bos_token / add_eos_token say, else what tokenizer.json's post-processor adds.
   */
  addSpecialTokens?: boolean;
}

/** Options of {@link Tokenizer.decode}. */
export interface DecodeOptions {
  /** Drop special tokens (BOS, EOS, padding, chat markers) from the text (default false). */
  skipSpecialTokens?: boolean;
}

/**
 * One turn of a conversation for {@link Tokenizer.applyChatTemplate}: `role` is whatever the
 * template expects (usually system, user, assistant); extra keys are passed to the template as they
 * are.
 */
export interface ChatMessage {
  role: string;
  content: string;
  [key: string]: unknown;
}

/** Options of {@link Tokenizer.applyChatTemplate}. */
export interface ChatTemplateOptions {
  /** End with the header of an assistant turn, so the model continues as the assistant (default false). */
  addGenerationPrompt?: boolean;
  /** Name of the template when tokenizer_config.json has several (default "default"). */
  templateName?: string;
  /** More template variables (tools, documents, ...). */
  variables?: Record<string, unknown>;
}

/** The special-token names tokenizer_config.json may set; each becomes a chat-template variable. */
const SPECIAL_KEYS = [
  'bos_token',
  'eos_token',
  'unk_token',
  'pad_token',
  'sep_token',
  'cls_token',
  'mask_token',
] as const;
type SpecialKey = (typeof SPECIAL_KEYS)[number];

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A special token in tokenizer_config.json is a string or an AddedToken object with `content`. */
function tokenContent(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (isObject(v) && typeof v.content === 'string') return v.content;
  return null;
}

/**
 * Where a {@link Tokenizer}'s JSON came from, for error messages, and a chat template read from its
 * own file. {@link loadTokenizer} fills it in.
 */
export interface TokenizerSources {
  /** Shown in error messages (default "tokenizer.json"). */
  tokenizerPath?: string;
  /** Shown in error messages (default "tokenizer_config.json"). */
  configPath?: string;
  /** A template from chat_template.jinja, used when tokenizer_config.json has none. */
  chatTemplate?: string;
}

/**
 * A Hugging Face tokenizer: tokenizer.json run by `@huggingface/tokenizers`, with what
 * tokenizer_config.json adds (special tokens, add_bos_token / add_eos_token,
 * clean_up_tokenization_spaces, chat templates), so that ids and text match transformers'. Load one
 * from a model directory with {@link loadTokenizer}; the constructor takes the parsed JSON instead
 * (in a browser, say) and throws a {@link TokenizerError} (BAD_TOKENIZER) if it cannot build the
 * tokenizer.
 */
export class Tokenizer {
  /** Id of tokenizer_config.json's bos_token, or null when it sets none. */
  readonly bosId: number | null;
  /** Ids that end generation: the EOS token (models may list more in config/generation_config). */
  readonly eosIds: readonly number[];
  /** Id of the pad_token, or null: generation then pads with an EOS id. */
  readonly padId: number | null;
  /** Id of the unk_token, or null. */
  readonly unkId: number | null;
  /** Special token strings by tokenizer_config.json key (bos_token, eos_token, ...), when set. */
  readonly specialTokens: Readonly<Partial<Record<SpecialKey, string>>>;
  /** Ids of the added tokens marked special in tokenizer.json. */
  readonly specialIds: ReadonlySet<number>;
  private readonly hf: HfTokenizer;
  private readonly addBos: boolean | null;
  private readonly addEos: boolean | null;
  private readonly cleanUp: boolean;
  private readonly templates: ReadonlyMap<string, string>;
  private readonly compiled = new Map<string, Template>();
  private readonly additionalSpecial: string[];
  private readonly configPath: string;

  constructor(tokenizerJson: unknown, tokenizerConfig: unknown = {}, sources: TokenizerSources = {}) {
    const tokPath = sources.tokenizerPath ?? 'tokenizer.json';
    this.configPath = sources.configPath ?? 'tokenizer_config.json';
    if (!isObject(tokenizerJson)) throw new TokenizerError('BAD_TOKENIZER', tokPath, 'not a JSON object');
    if (!isObject(tokenizerConfig))
      throw new TokenizerError('BAD_TOKENIZER', this.configPath, 'not a JSON object');
    try {
      // The library iterates added_tokens unconditionally; older files may omit the key.
      this.hf = new HfTokenizer({ added_tokens: [], ...tokenizerJson }, tokenizerConfig);
    } catch (e) {
      throw new TokenizerError(
        'BAD_TOKENIZER',
        tokPath,
        `cannot build a tokenizer: ${(e as Error).message}`,
        { cause: e },
      );
    }
    const cfg = tokenizerConfig;
    const specials: Partial<Record<SpecialKey, string>> = {};
    for (const key of SPECIAL_KEYS) {
      const content = tokenContent(cfg[key]);
      if (content !== null) specials[key] = content;
    }
    this.specialTokens = specials;
    this.additionalSpecial = Array.isArray(cfg.additional_special_tokens)
      ? cfg.additional_special_tokens.map(tokenContent).filter((t): t is string => t !== null)
      : [];
    const id = (key: SpecialKey) => {
      const content = specials[key];
      return content === undefined ? null : (this.hf.token_to_id(content) ?? null);
    };
    this.bosId = id('bos_token');
    const eos = id('eos_token');
    this.eosIds = eos === null ? [] : [eos];
    this.padId = id('pad_token');
    this.unkId = id('unk_token');
    this.specialIds = new Set(
      [...this.hf.get_added_tokens_decoder().values()].filter((t) => t.special).map((t) => t.id),
    );
    this.addBos = typeof cfg.add_bos_token === 'boolean' ? cfg.add_bos_token : null;
    this.addEos = typeof cfg.add_eos_token === 'boolean' ? cfg.add_eos_token : null;
    // transformers' default; @huggingface/tokenizers would otherwise clean up (" ," -> ","), which
    // changes generated text.
    this.cleanUp = cfg.clean_up_tokenization_spaces === true;
    this.templates = chatTemplates(cfg.chat_template, sources.chatTemplate, this.configPath);
  }

  /** The chat template used by default, or null when the tokenizer has none. */
  get chatTemplate(): string | null {
    return this.templates.get('default') ?? null;
  }

  /**
   * Token ids of `text`, with the special tokens {@link EncodeOptions.addSpecialTokens} asks for.
   */
  encode(text: string, opts: EncodeOptions = {}): number[] {
    const special = opts.addSpecialTokens ?? true;
    if (!special || (this.addBos === null && this.addEos === null)) {
      return this.hf.encode(text, { add_special_tokens: special }).ids;
    }
    // tokenizer_config.json's flags override the post-processor, as transformers' LLaMA tokenizers do.
    const ids = this.hf.encode(text, { add_special_tokens: false }).ids;
    const eos = this.eosIds[0];
    return [
      ...(this.addBos && this.bosId !== null ? [this.bosId] : []),
      ...ids,
      ...(this.addEos && eos !== undefined ? [eos] : []),
    ];
  }

  /**
   * The text of `ids`. Decoding pieces one by one does not give the text of the whole (split
   * characters, leading spaces): stream with {@link Tokenizer.streamDecoder}.
   */
  decode(ids: ArrayLike<number>, opts: DecodeOptions = {}): string {
    if (ids.length === 0) return '';
    return this.hf.decode(Array.from(ids), {
      skip_special_tokens: opts.skipSpecialTokens ?? false,
      clean_up_tokenization_spaces: this.cleanUp,
    });
  }

  /** The id of a vocabulary or added token string, or null when the vocabulary lacks it. */
  tokenToId(token: string): number | null {
    return this.hf.token_to_id(token) ?? null;
  }

  /**
   * The vocabulary string of `id` (the raw token, e.g. with `Ġ` or `▁` for spaces), or null when
   * out of range.
   */
  idToToken(id: number): string | null {
    return this.hf.id_to_token(id) ?? null;
  }

  /** An incremental decoder for streaming generated tokens as text (see StreamDecoder). */
  streamDecoder(opts: StreamDecoderOptions = {}): StreamDecoder {
    return new StreamDecoder(this, opts);
  }

  /**
   * Renders the chat template with the messages, add_generation_prompt, the special tokens and
   * raise_exception, as transformers' apply_chat_template(tokenize=False) does. Templates usually
   * write BOS themselves: encode the result with addSpecialTokens false.
   */
  applyChatTemplate(messages: readonly ChatMessage[], opts: ChatTemplateOptions = {}): string {
    const name = opts.templateName ?? 'default';
    const source = this.templates.get(name);
    if (source === undefined) {
      const detail =
        this.templates.size === 0
          ? 'the tokenizer has no chat_template (nor chat_template.jinja beside it)'
          : `no chat template named "${name}" (have: ${[...this.templates.keys()].join(', ')})`;
      throw new TokenizerError('NO_CHAT_TEMPLATE', this.configPath, detail);
    }
    let template = this.compiled.get(name);
    try {
      if (!template) {
        template = new Template(source);
        this.compiled.set(name, template);
      }
      return template.render({
        ...this.specialTokens,
        additional_special_tokens: this.additionalSpecial,
        ...opts.variables,
        messages,
        add_generation_prompt: opts.addGenerationPrompt ?? false,
      });
    } catch (e) {
      throw new TokenizerError(
        'BAD_CHAT_TEMPLATE',
        this.configPath,
        `chat template "${name}": ${(e as Error).message}`,
        {
          cause: e,
        },
      );
    }
  }
}

/** tokenizer_config.json's chat_template: a string, or a list of {name, template}. */
function chatTemplates(value: unknown, fromFile: string | undefined, path: string): Map<string, string> {
  const out = new Map<string, string>();
  if (typeof value === 'string') out.set('default', value);
  else if (Array.isArray(value)) {
    for (const t of value) {
      if (!isObject(t) || typeof t.name !== 'string' || typeof t.template !== 'string') {
        throw new TokenizerError(
          'BAD_TOKENIZER',
          path,
          'chat_template list entries must be {name, template} strings',
        );
      }
      out.set(t.name, t.template);
    }
  } else if (value !== undefined && value !== null) {
    throw new TokenizerError(
      'BAD_TOKENIZER',
      path,
      'chat_template must be a string or a list of {name, template}',
    );
  }
  if (!out.has('default') && fromFile !== undefined) out.set('default', fromFile);
  return out;
}

async function readText(path: string, required: boolean): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && !required) return undefined;
    throw new TokenizerError(
      code === 'ENOENT' ? 'NO_TOKENIZER' : 'BAD_TOKENIZER',
      path,
      code === 'ENOENT' ? 'not found (the model directory needs a tokenizer.json)' : (e as Error).message,
      { cause: e },
    );
  }
}

function parseJson(text: string, path: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new TokenizerError('BAD_TOKENIZER', path, `not valid JSON (${(e as Error).message})`, { cause: e });
  }
}

/**
 * Loads the tokenizer of a model directory (or a tokenizer.json path): tokenizer.json is required,
 * tokenizer_config.json and chat_template.jinja beside it are optional.
 */
export async function loadTokenizer(path: string): Promise<Tokenizer> {
  let dir = path;
  let tokPath = join(path, 'tokenizer.json');
  try {
    if (!(await stat(path)).isDirectory()) {
      dir = dirname(path);
      tokPath = path;
    }
  } catch (e) {
    throw new TokenizerError('NO_TOKENIZER', path, 'no such file or directory', { cause: e });
  }
  const configPath = join(dir, 'tokenizer_config.json');
  const templatePath = join(dir, 'chat_template.jinja');
  const tokenizerJson = parseJson((await readText(tokPath, true)) as string, tokPath);
  const configText = await readText(configPath, false);
  const config = configText === undefined ? {} : parseJson(configText, configPath);
  const chatTemplate = await readText(templatePath, false);
  return new Tokenizer(tokenizerJson, config, {
    tokenizerPath: tokPath,
    configPath,
    chatTemplate,
  });
}
