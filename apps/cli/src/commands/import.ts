import { open } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import {
  ImportError,
  type ImportProgress,
  type ImportSummary,
  importGguf,
  importLlama2c,
} from '@sharelora/models';
import { UsageError } from '../cli-error.js';
import { progress, progressDone } from '../progress.js';

export const importHelp = `Usage: sharelora import [--from gguf|llama2c] FILE [--tokenizer FILE] --out DIR [--dequantize] [--json]

Converts a LLaMA-architecture checkpoint into a Hugging Face model directory (config.json,
generation_config.json, model.safetensors, tokenizer.json, tokenizer_config.json) that every other
command reads. The RoPE layout of q/k projections is converted from llama.cpp/llama2.c's interleaved
pairs to Hugging Face's rotate-half.

  --from gguf      a GGUF file (v2/v3; F32, F16, BF16, Q8_0, Q4_0, Q4_K or Q6_K tensors); its
                   embedded tokenizer becomes tokenizer.json. The blocks' quantized linear weights
                   are written as stored and stay quantized on the GPU when loaded (train, generate
                   and eval read them in place); embeddings, norms and the output layer are decoded
  --from llama2c   a llama2.c .bin checkpoint (version 0 or 1)
  without --from   GGUF when the file starts with "GGUF", else llama2.c (whose legacy files have no
                   magic, so the header and the file size must agree exactly)

Options:
  --tokenizer FILE  llama2.c only: its tokenizer.bin (e.g. tok512.bin) or a sentencepiece .model;
                    without it no tokenizer.json is written
  --out DIR         output directory (created if missing; files of the same names are replaced)
  --dequantize      GGUF only: decode the quantized block weights to F32 as well
  --json            print the import summary as one JSON document on stdout
  -h, --help        show this help`;

const FORMATS = ['gguf', 'llama2c'] as const;

function parse(argv: string[]) {
  try {
    return parseArgs({
      args: argv,
      options: {
        from: { type: 'string' },
        tokenizer: { type: 'string' },
        out: { type: 'string' },
        dequantize: { type: 'boolean' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: true,
    });
  } catch (e) {
    throw new UsageError(
      `sharelora import: ${(e as Error).message.split('\n')[0]} (see sharelora import --help)`,
    );
  }
}

/** Whether the file starts with GGUF's magic; an unreadable file is left to the importer to report. */
async function startsWithGguf(file: string): Promise<boolean> {
  try {
    const fh = await open(file, 'r');
    try {
      const { bytesRead, buffer } = await fh.read(Buffer.alloc(4), 0, 4, 0);
      return bytesRead === 4 && buffer.toString('latin1') === 'GGUF';
    } finally {
      await fh.close();
    }
  } catch {
    return false;
  }
}

/**
 * A file we cannot parse, or a path that does not exist or is not a file, is bad input (exit 2); the
 * operating system refusing a read or write (permissions, a full disk) is a runtime failure (exit 1).
 */
function isBadInput(e: ImportError): boolean {
  if (e.code !== 'IO') return true;
  const errno = (e.cause as NodeJS.ErrnoException | undefined)?.code;
  return errno === undefined || errno === 'ENOENT' || errno === 'ENOTDIR' || errno === 'EISDIR';
}

export async function importCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv);
  if (values.help) {
    console.log(importHelp);
    return 0;
  }
  const given = values.from as (typeof FORMATS)[number] | undefined;
  if (given !== undefined && !FORMATS.includes(given)) {
    throw new UsageError(
      `--from must be one of ${FORMATS.join(', ')}, got "${given}" (see sharelora import --help)`,
    );
  }
  if (positionals.length !== 1) {
    throw new UsageError(`sharelora import: give exactly one checkpoint FILE, got ${positionals.length}`);
  }
  if (!values.out) throw new UsageError('--out DIR is required (see sharelora import --help)');
  const [file] = positionals;
  const from = given ?? ((await startsWithGguf(file)) ? 'gguf' : 'llama2c');
  if (values.tokenizer !== undefined && from === 'gguf') {
    throw new UsageError(
      `--tokenizer applies to llama2.c checkpoints only: ${given ? 'a GGUF file' : `${file} is GGUF (it starts with "GGUF") and`} carries its tokenizer`,
    );
  }
  if (values.dequantize && from !== 'gguf')
    throw new UsageError('--dequantize applies to GGUF files only: a llama2.c checkpoint holds F32 weights');
  const onProgress = (p: ImportProgress) =>
    progress(`import ${file}`, p.done, p.total, { unit: 'tensors', detail: p.tensor });
  let summary: ImportSummary;
  try {
    summary =
      from === 'gguf'
        ? await importGguf(file, { outDir: values.out, onProgress, dequantize: values.dequantize })
        : await importLlama2c(file, { outDir: values.out, tokenizerPath: values.tokenizer, onProgress });
  } catch (e) {
    if (e instanceof ImportError && isBadInput(e)) {
      // Guessed by elimination: say so, since the file may be neither format.
      const guessed = given === undefined && e.code !== 'IO' && e.message.startsWith('llama2c ');
      throw new UsageError(
        guessed
          ? `${file} is not GGUF (it does not start with "GGUF") nor, by its header, a llama2.c checkpoint: ` +
              `${e.detail} [${e.code}] (give --from if it is one of them)`
          : e.message,
      );
    }
    throw e;
  } finally {
    progressDone();
  }
  for (const w of summary.warnings) console.error(`sharelora import: warning: ${w}`);
  if (values.json) {
    console.log(JSON.stringify(summary, null, 2));
  } else {
    const c = summary.config;
    console.log(`imported ${summary.format} ${summary.source}`);
    console.log(
      `  llama: ${c.num_hidden_layers} layers, hidden ${c.hidden_size}, ${c.num_attention_heads} heads ` +
        `(${c.num_key_value_heads} kv), vocab ${c.vocab_size}; ${summary.tensors} tensors, ` +
        `${summary.parameters.toLocaleString('en-US')} parameters`,
    );
    const tied = c.tie_word_embeddings;
    console.log(
      tied
        ? '  output layer: tied to the token embedding (tie_word_embeddings true), counted once'
        : `  output layer: lm_head.weight stored apart from the token embedding (tie_word_embeddings false): ` +
            `${(c.vocab_size * c.hidden_size).toLocaleString('en-US')} of the parameters`,
    );
    const kept = Object.entries(summary.quantized);
    if (kept.length)
      console.log(
        `  block weights kept as llama.cpp blocks: ${kept.map(([t, n]) => `${n} ${t}`).join(', ')} (--dequantize decodes them)`,
      );
    if (summary.tokenizer) {
      console.log(`  tokenizer: ${summary.tokenizer.vocabSize} pieces from ${summary.tokenizer.source}`);
    }
    console.log(`  wrote ${summary.files.join(', ')} to ${summary.outDir}`);
  }
  return 0;
}
