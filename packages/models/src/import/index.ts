/**
 * `sharelora import`: llama2.c and GGUF checkpoints → a Hugging Face LLaMA directory (config.json,
 * generation_config.json, model.safetensors, tokenizer.json, tokenizer_config.json). Everything is
 * validated before the first file is written, weights stream shard by shard, and config.json is
 * written last, so a folder with a config.json holds a complete import.
 */
import { extname, join, resolve } from 'node:path';
import { ImportError, type ImportSource } from './errors.js';
import { ensureDir, withFile } from './file.js';
import { GGUF_QUANTIZATION_CONFIG, GgufFile, ggufToLlama } from './gguf.js';
import {
  type HfLlamaConfig,
  type ImportProgress,
  type LlamaShape,
  llamaConfig,
  type PlannedTensor,
  writeJson,
  writeWeights,
} from './hf-llama.js';
import { readLlama2c } from './llama2c.js';
import {
  ggufTokenizer,
  type HfTokenizerFiles,
  hfTokenizerFiles,
  readLlama2cTokenizer,
  readSentencePieceModel,
  type SentencePieceVocab,
} from './tokenizer.js';

export { ImportError, type ImportErrorCode } from './errors.js';
export { GGUF_QUANTIZATION_CONFIG, ggmlTypeKey } from './gguf.js';
export type { HfLlamaConfig, ImportProgress } from './hf-llama.js';

/** Options of {@link importGguf}, and the common ones of {@link importLlama2c}. */
export interface ImportOptions {
  /** Created if missing; files of the same names are replaced. */
  outDir: string;
  /** Called after each tensor is written. */
  onProgress?: (p: ImportProgress) => void;
  /** Largest safetensors shard, in bytes (default 5 GB, as transformers); bounds memory use. */
  maxShardBytes?: number;
}

/** Options of {@link importGguf}. */
export interface GgufImportOptions extends ImportOptions {
  /**
   * Decode the blocks' Q8_0/Q4_0/Q4_K/Q6_K weights to F32. By default they are written as the GGUF
   * stores them (llama.cpp blocks), and loading keeps them quantized on the GPU.
   */
  dequantize?: boolean;
}

/**
 * Options of {@link importLlama2c}: the output and, optionally, the tokenizer file, which llama2.c
 * keeps apart from the weights.
 */
export interface Llama2cImportOptions extends ImportOptions {
  /** llama2.c `tokenizer.bin` (tokenizer.py export) or a sentencepiece `.model`. */
  tokenizerPath?: string;
}

/**
 * What {@link importLlama2c} or {@link importGguf} wrote: the files, the resulting config.json,
 * sizes, and warnings (such as a tokenizer that was not written).
 */
export interface ImportSummary {
  format: 'llama2c' | 'gguf';
  /** Absolute paths. */
  source: string;
  outDir: string;
  /** Names of the files written in outDir. */
  files: string[];
  /** The config.json written. */
  config: HfLlamaConfig;
  /** Number of tensors written (a quantized weight's type record not counted). */
  tensors: number;
  /** Block weights written in their llama.cpp type, by type ('q4_k': 7, ...); empty when none. */
  quantized: Record<string, number>;
  /** Total elements of those tensors: the model's parameter count. */
  parameters: number;
  /** Where tokenizer.json came from, or null when none was written (warnings say why). */
  tokenizer: { source: string; vocabSize: number; merges: number } | null;
  warnings: string[];
}

interface Converted {
  format: ImportSummary['format'];
  source: string;
  shape: LlamaShape;
  tensors: PlannedTensor[];
  tokenizer: { source: string; vocab: SentencePieceVocab; files: HfTokenizerFiles } | null;
  warnings: string[];
  /** Block weights kept in a llama.cpp type, by type. */
  quantized?: Record<string, number>;
}

function tokenizerFiles(source: ImportSource, path: string, vocab: SentencePieceVocab, shape: LlamaShape) {
  return hfTokenizerFiles(vocab, {
    modelMaxLength: shape.max_position_embeddings,
    fail: (detail) => {
      throw new ImportError(source, path, 'BAD_HEADER', detail);
    },
  });
}

async function write(c: Converted, opts: ImportOptions): Promise<ImportSummary> {
  const outDir = resolve(opts.outDir);
  await ensureDir(outDir);
  const files = await writeWeights(outDir, c.tensors, opts);
  // The tokenizer's special ids are authoritative over format defaults.
  const shape = c.tokenizer
    ? { ...c.shape, bos_token_id: c.tokenizer.vocab.bosId, eos_token_id: c.tokenizer.vocab.eosId }
    : c.shape;
  const quantized = c.quantized ?? {};
  const config = Object.keys(quantized).length
    ? { ...llamaConfig(shape), quantization_config: { ...GGUF_QUANTIZATION_CONFIG } }
    : llamaConfig(shape);
  const json = async (name: string, value: unknown) => {
    await writeJson(join(outDir, name), value);
    files.push(name);
  };
  if (c.tokenizer) {
    await json('tokenizer.json', c.tokenizer.files.tokenizerJson);
    await json('tokenizer_config.json', c.tokenizer.files.tokenizerConfig);
  }
  await json('generation_config.json', {
    bos_token_id: config.bos_token_id,
    eos_token_id: config.eos_token_id,
  });
  await json('config.json', config);
  return {
    format: c.format,
    source: c.source,
    outDir,
    files,
    config,
    tensors: c.tensors.filter((t) => t.numel !== 0).length,
    quantized,
    parameters: c.tensors.reduce((n, t) => n + (t.numel ?? t.shape.reduce((a, b) => a * b, 1)), 0),
    tokenizer: c.tokenizer && {
      source: c.tokenizer.source,
      vocabSize: c.tokenizer.vocab.pieces.length,
      merges: c.tokenizer.files.mergeCount,
    },
    warnings: c.warnings,
  };
}

/**
 * Import a llama2.c `.bin` (legacy version 0, or version 1) and optionally its tokenizer
 * (`tokenizer.bin` or sentencepiece `.model`) into an HF LLaMA directory.
 */
export async function importLlama2c(binPath: string, opts: Llama2cImportOptions): Promise<ImportSummary> {
  const source = resolve(binPath);
  return withFile('llama2c', source, async (file) => {
    const ckpt = await readLlama2c(file);
    const warnings: string[] = [];
    let tokenizer: Converted['tokenizer'] = null;
    if (opts.tokenizerPath === undefined) {
      warnings.push('no tokenizer given: tokenizer.json was not written (pass the llama2.c tokenizer.bin)');
    } else {
      const tokPath = resolve(opts.tokenizerPath);
      const vocab = await withFile('tokenizer', tokPath, (f) =>
        extname(tokPath) === '.model'
          ? readSentencePieceModel(f, ckpt.shape.vocab_size)
          : readLlama2cTokenizer(f, ckpt.shape.vocab_size),
      );
      tokenizer = { source: tokPath, vocab, files: tokenizerFiles('tokenizer', tokPath, vocab, ckpt.shape) };
    }
    return write(
      { format: 'llama2c', source, shape: ckpt.shape, tensors: ckpt.tensors, tokenizer, warnings },
      opts,
    );
  });
}

/**
 * Import a llama-architecture GGUF (v2/v3; F32, F16, BF16, Q8_0, Q4_0, Q4_K or Q6_K tensors) with its
 * embedded SentencePiece tokenizer into an HF LLaMA directory. The blocks' quantized linear weights
 * stay as stored unless `dequantize` (see {@link GgufImportOptions}).
 */
export async function importGguf(path: string, opts: GgufImportOptions): Promise<ImportSummary> {
  const source = resolve(path);
  return withFile('gguf', source, async (file) => {
    const g = await GgufFile.read(file);
    const llama = ggufToLlama(g, { dequantize: opts.dequantize });
    const vocab = ggufTokenizer(source, g.metadata);
    const warnings: string[] = [];
    let tokenizer: Converted['tokenizer'] = null;
    if (typeof vocab === 'string') warnings.push(`tokenizer.json was not written: ${vocab}`);
    else tokenizer = { source, vocab, files: tokenizerFiles('gguf', source, vocab, llama.shape) };
    return write(
      {
        format: 'gguf',
        source,
        shape: llama.shape,
        tensors: llama.tensors,
        tokenizer,
        warnings,
        quantized: llama.quantized,
      },
      opts,
    );
  });
}
