/**
 * The prompt template an adapter was trained with, saved next to it, so that `generate` can put a
 * user's prompt in the same template (an instruction-tuned adapter sees the Alpaca template, a
 * GSM8K one "Question: …\nAnswer:") without anyone typing it by hand.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DataError } from './errors.js';
import { createFormat, type LmFormatSpec } from './formats.js';

/** The file in an adapter directory that names its training format. */
export const PROMPT_FORMAT_FILE = 'sharelora_prompt_format.json';

/** The causal-LM formats, whose prompt templates {@link applyPromptFormat} fills. */
export const PROMPT_FORMATS = ['instruction', 'gsm8k', 'e2e', 'prompt-completion', 'text'] as const;
/** A causal-LM format's name: the template {@link applyPromptFormat} fills. */
export type PromptFormat = LmFormatSpec['type'];

/** Writes `{"format": …}` into an adapter directory. */
export async function writePromptFormat(dir: string, format: PromptFormat): Promise<void> {
  await writeFile(join(dir, PROMPT_FORMAT_FILE), `${JSON.stringify({ format })}\n`);
}

/** The format an adapter directory was trained with, or null when it records none. */
export async function readPromptFormat(dir: string): Promise<PromptFormat | null> {
  const file = join(dir, PROMPT_FORMAT_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  let format: unknown;
  try {
    format = (JSON.parse(text) as { format?: unknown }).format;
  } catch (e) {
    throw DataError.atLine('PARSE', file, null, `not valid JSON (${(e as Error).message})`);
  }
  if (!PROMPT_FORMATS.includes(format as PromptFormat))
    throw DataError.atLine(
      'BAD_TYPE',
      file,
      null,
      `"format" must be one of ${PROMPT_FORMATS.join(', ')}, got ${JSON.stringify(format)}`,
    );
  return format as PromptFormat;
}

/**
 * `text` as the prompt of `format`, rendered by the same code that renders training records:
 * the instruction of an Alpaca record without input, the question of a GSM8K one, the MR of an E2E
 * one; prompt-completion and text prompts are the text itself.
 */
export function applyPromptFormat(format: PromptFormat, text: string): string {
  const values =
    format === 'instruction'
      ? { instruction: text, input: '', output: '' }
      : format === 'gsm8k'
        ? { question: text, answer: '' }
        : format === 'e2e'
          ? { mr: text, ref: '' }
          : null;
  if (!values) return text;
  const rendered = createFormat({ type: format }).render({
    values,
    source: { file: '--prompt', line: 1, row: 1 },
  });
  return rendered.kind === 'lm' ? rendered.prompt : text;
}
