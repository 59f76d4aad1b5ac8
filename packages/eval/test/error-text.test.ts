import { afterEach, describe, expect, it } from 'vitest';
import { scrubErrorText } from '../src/index.js';

describe('error text for result files', () => {
  afterEach(() => {
    delete process.env.SHARELORA_TEST_TOKEN;
  });

  it('is one line without control characters', () => {
    expect(scrubErrorText('ValueError: a\nb\r\n\tc\u0000d\u202ee')).toBe('ValueError: a b c d e');
  });

  it('is cut to the limit, marked with an ellipsis', () => {
    const long = scrubErrorText('x'.repeat(1000));
    expect(long).toHaveLength(200);
    expect(long.endsWith('x…')).toBe(true);
    expect(scrubErrorText('x'.repeat(200))).toBe('x'.repeat(200));
    expect(scrubErrorText('abcdef', 4)).toBe('abc…');
  });

  it("hides the values of the harness's environment variables, before cutting", () => {
    process.env.SHARELORA_TEST_TOKEN = 'hf_0123456789abcdef';
    expect(scrubErrorText('KeyError: hf_0123456789abcdef and hf_0123456789abcdef')).toBe(
      'KeyError: [redacted] and [redacted]',
    );
    const cut = scrubErrorText(`${'y'.repeat(190)}hf_0123456789abcdef`);
    expect(cut).not.toContain('hf_0123');
  });
});
