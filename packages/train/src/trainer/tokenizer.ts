import { type Tokenizer, TokenizerError } from '@sharelora/models';
import type { TextTokenizer } from '../data/tokenizer.js';

/**
 * @sharelora/models' Tokenizer as the data pipeline's TextTokenizer. `bosId` is the BOS the tokenizer
 * really prepends, found by encoding a probe: GPT-2 names a bos_token but prepends nothing. The
 * models' Tokenizer encodes single texts only, so a pair is joined the way RoBERTa's post-processor
 * joins it, `<s> A </s></s> B </s>`: the layout this project's classifiers (RoBERTa) are trained
 * with and that @sharelora/eval scores them with.
 */
export function textTokenizerOf(tok: Tokenizer): TextTokenizer {
  const probe = tok.encode('a');
  const special = (key: 'cls_token' | 'sep_token', fallback: number | undefined): number => {
    const name = tok.specialTokens[key];
    const id = name === undefined ? fallback : tok.tokenToId(name);
    if (id === null || id === undefined)
      throw new TokenizerError('BAD_TOKENIZER', 'tokenizer.json', `no ${key} to join a text pair with`);
    return id;
  };
  return {
    bosId: tok.bosId !== null && probe[0] === tok.bosId ? tok.bosId : null,
    eosIds: [...tok.eosIds],
    padId: tok.padId,
    encode(text, opts = {}) {
      const addSpecialTokens = opts.addSpecialTokens ?? true;
      if (opts.pair === undefined) return tok.encode(text, { addSpecialTokens });
      const a = tok.encode(text, { addSpecialTokens: false });
      const b = tok.encode(opts.pair, { addSpecialTokens: false });
      if (!addSpecialTokens) return [...a, ...b];
      const cls = special('cls_token', tok.bosId ?? undefined);
      const sep = special('sep_token', tok.eosIds[0]);
      return [cls, ...a, sep, sep, ...b, sep];
    },
  };
}
