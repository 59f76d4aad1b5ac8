import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { listGuides, titleOf } from '../.vitepress/guides';
import { packageEntryName } from '../typedoc/plugin.mjs';

const DOCS = fileURLToPath(new URL('../../../docs', import.meta.url));

describe('the site reads the guides from docs/', () => {
  it('lists every docs/*.md but the playground, the overview first, each titled by its first heading', () => {
    const guides = listGuides(DOCS);
    const files = readdirSync(DOCS).filter((f) => f.endsWith('.md') && f !== 'playground.md');
    expect(guides.map((g) => `${g.slug}.md`).sort()).toEqual(files.sort());
    expect(guides.slice(0, 3).map((g) => g.slug)).toEqual(['index', 'getting-started', 'quickstart']);
    expect(guides.find((g) => g.slug === 'sharelora')?.title).toBe('LoRA and ShareLoRA');
  });

  it('takes a title without Markdown emphasis, or falls back to the slug', () => {
    expect(titleOf('intro\n# The `core` *guide* #\n', 'x')).toBe('The core guide');
    expect(titleOf('no heading', 'fallback')).toBe('fallback');
  });
});

describe('the API reference names modules after package entries', () => {
  it('maps source folders to package names', () => {
    expect(packageEntryName('core/src')).toBe('@sharelora/core');
    expect(packageEntryName('adapters/src/node')).toBe('@sharelora/adapters/node');
    expect(packageEntryName('something-else')).toBe('something-else');
  });
});
