/**
 * The tokenizer wrapper on the presets' real tokenizer files (SentencePiece-style BPE with byte
 * fallback, byte-level BPE): special tokens and tokenizer_config flags, streaming decode across
 * split UTF-8 characters, chat templates, and errors naming the file.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadTokenizer, type Tokenizer, TokenizerError } from '../src/index.js';
import { gpt2Tokenizer, llamaTokenizer } from '../src/presets/tokenizers.js';
import { useTmp } from './helpers.js';

const tmp = useTmp('tokenizer');

async function writeTokenizer(
  name: string,
  files: { tokenizerJson: unknown; tokenizerConfig?: unknown; template?: string },
): Promise<string> {
  const dir = join(tmp(), name);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(files.tokenizerJson));
  if (files.tokenizerConfig)
    await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify(files.tokenizerConfig));
  if (files.template) await writeFile(join(dir, 'chat_template.jinja'), files.template);
  return dir;
}

const llama = () => llamaTokenizer(256);

/** Streams ids one at a time and returns what each push emitted, plus the flush. */
function stream(tok: Tokenizer, ids: number[], context?: number[]): string[] {
  const dec = tok.streamDecoder({ context });
  return [...ids.map((id) => dec.push(id)), dec.flush()];
}

describe('Tokenizer', () => {
  it('encodes with BOS as tokenizer_config says, decodes, and knows its special ids', async () => {
    const t = llama();
    const tok = await loadTokenizer(await writeTokenizer('llama', t));
    expect(tok.bosId).toBe(1);
    expect(tok.eosIds).toEqual([2]);
    expect(tok.padId).toBeNull();
    expect(tok.unkId).toBe(0);
    expect([...tok.specialIds].sort()).toEqual([0, 1, 2]);
    const ids = tok.encode('the cat sat');
    expect(ids[0]).toBe(1);
    expect(tok.encode('the cat sat', { addSpecialTokens: false })).toEqual(ids.slice(1));
    expect(tok.decode(ids, { skipSpecialTokens: true })).toBe('the cat sat');
    expect(tok.decode(ids)).toBe('<s> the cat sat');
    expect(tok.decode([])).toBe('');

    // add_bos_token / add_eos_token override what tokenizer.json's post-processor adds.
    const flipped = await loadTokenizer(
      await writeTokenizer('llama-eos', {
        ...t,
        tokenizerConfig: { ...t.tokenizerConfig, add_bos_token: false, add_eos_token: true },
      }),
    );
    expect(flipped.encode('the cat sat')).toEqual([...ids.slice(1), 2]);
  });

  it('accepts a tokenizer.json path and works without tokenizer_config.json (post-processor decides)', async () => {
    const dir = await writeTokenizer('bare', { tokenizerJson: llama().tokenizerJson });
    const tok = await loadTokenizer(join(dir, 'tokenizer.json'));
    expect(tok.bosId).toBeNull();
    expect(tok.encode('the')[0]).toBe(1);
    expect(tok.chatTemplate).toBeNull();
  });

  it('streams a multi-byte character split across byte-fallback tokens only once complete', async () => {
    const tok = await loadTokenizer(await writeTokenizer('llama-stream', llama()));
    // é (2 bytes) and 🙂 (4 bytes) are not in the vocabulary: they become <0xHH> byte tokens.
    const text = 'the café 🙂 is on';
    const ids = tok.encode(text, { addSpecialTokens: false });
    const pieces = ids.map((id) => tok.idToToken(id));
    expect(pieces).toContain('<0xC3>');
    expect(pieces).toContain('<0xF0>');
    const out = stream(tok, ids);
    expect(out.join('')).toBe(text);
    // No emitted piece holds a broken character; the byte tokens before a character's last emit ''.
    for (const s of out) expect(s).not.toContain('\uFFFD');
    const e1 = pieces.indexOf('<0xC3>');
    expect(out[e1]).toBe('');
    expect(out[e1 + 1]).toBe('é');
    const f0 = pieces.indexOf('<0xF0>');
    expect(out.slice(f0, f0 + 3)).toEqual(['', '', '']);
    expect(out[f0 + 3]).toBe('🙂');

    // After a prompt, the first new token keeps its leading space.
    const prompt = tok.encode('the cat');
    // SentencePiece's dummy prefix makes the first piece "▁is", which decode() alone would strip.
    const more = tok.encode('is on', { addSpecialTokens: false });
    expect(tok.decode(more)).toBe('is on');
    expect(stream(tok, more, prompt).join('')).toBe(' is on');
    // An unfinished character is held back until flush.
    const dec = tok.streamDecoder();
    expect(dec.push(tok.tokenToId('<0xE2>') as number)).toBe('');
    expect(dec.flush()).toBe('\uFFFD');
  });

  it('streams byte-level BPE (GPT-2 layout) across split characters', async () => {
    const tok = await loadTokenizer(await writeTokenizer('gpt2', gpt2Tokenizer(128)));
    const text = 'naïve → done';
    const ids = tok.encode(text);
    expect(ids.length).toBeGreaterThan(text.length - 4);
    const out = stream(tok, ids);
    expect(out.join('')).toBe(text);
    for (const s of out) expect(s).not.toContain('\uFFFD');
    expect(tok.decode(ids)).toBe(text);
  });

  it('renders a chat template with messages, special tokens and add_generation_prompt', async () => {
    const t = llama();
    const template =
      "{{ bos_token }}{% for m in messages %}{% if m.role == 'system' %}{{ raise_exception('no system role') }}{% endif %}" +
      '[{{ m.role }}] {{ m.content }}{{ eos_token }}{% endfor %}{% if add_generation_prompt %}[assistant]{% endif %}';
    const tok = await loadTokenizer(
      await writeTokenizer('chat', {
        ...t,
        tokenizerConfig: { ...t.tokenizerConfig, chat_template: template },
      }),
    );
    const messages = [
      { role: 'user', content: 'hi' },
      { role: 'assistant', content: 'hello' },
    ];
    expect(tok.applyChatTemplate(messages)).toBe('<s>[user] hi</s>[assistant] hello</s>');
    const prompt = tok.applyChatTemplate(messages.slice(0, 1), { addGenerationPrompt: true });
    expect(prompt).toBe('<s>[user] hi</s>[assistant]');
    // The template wrote BOS; special tokens in the text encode as themselves.
    const ids = tok.encode(prompt, { addSpecialTokens: false });
    expect(ids[0]).toBe(1);
    expect(ids.filter((id) => id === 2)).toHaveLength(1);

    const err = (() => {
      try {
        tok.applyChatTemplate([{ role: 'system', content: 'x' }]);
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(TokenizerError);
    expect((err as TokenizerError).code).toBe('BAD_CHAT_TEMPLATE');
    expect((err as TokenizerError).message).toMatch(/tokenizer_config\.json: .*no system role/);

    // chat_template.jinja beside the files is used when tokenizer_config.json has none.
    const fromFile = await loadTokenizer(
      await writeTokenizer('chat-file', { ...t, template: '{{ messages[0].content }}!' }),
    );
    expect(fromFile.applyChatTemplate(messages)).toBe('hi!');
    const none = await loadTokenizer(await writeTokenizer('no-chat', t));
    expect(() => none.applyChatTemplate(messages)).toThrow(/has no chat_template/);
  });

  it('names the file when tokenizer.json is missing or malformed', async () => {
    const empty = join(tmp(), 'empty');
    await mkdir(empty, { recursive: true });
    await expect(loadTokenizer(empty)).rejects.toMatchObject({
      code: 'NO_TOKENIZER',
      message: expect.stringContaining(join(empty, 'tokenizer.json')),
    });
    const bad = join(tmp(), 'bad');
    await mkdir(bad, { recursive: true });
    await writeFile(join(bad, 'tokenizer.json'), '{"model": ');
    await expect(loadTokenizer(bad)).rejects.toMatchObject({
      code: 'BAD_TOKENIZER',
      message: expect.stringMatching(/bad\/tokenizer\.json: not valid JSON/),
    });
    await writeFile(join(bad, 'tokenizer.json'), '{"model": {"type": "Nope"}}');
    await expect(loadTokenizer(bad)).rejects.toMatchObject({
      code: 'BAD_TOKENIZER',
      message: expect.stringMatching(/bad\/tokenizer\.json: cannot build a tokenizer/),
    });
    await writeFile(join(bad, 'tokenizer.json'), JSON.stringify(llama().tokenizerJson));
    await writeFile(join(bad, 'tokenizer_config.json'), '[1]');
    await expect(loadTokenizer(bad)).rejects.toThrow(/bad\/tokenizer_config\.json: not a JSON object/);
  });
});
