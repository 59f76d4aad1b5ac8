import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildSite, DEFAULT_DOCS_DIR, findBrokenLinks, rewriteDocLink, slugify } from '../src/build-site.mjs';

const tempDirs: string[] = [];
async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `sharelora-docs-${prefix}-`));
  tempDirs.push(dir);
  return dir;
}
afterAll(async () => {
  await Promise.all(tempDirs.map((d) => rm(d, { recursive: true, force: true })));
});

describe('the repository docs/ folder', () => {
  let outDir: string;
  let result: Awaited<ReturnType<typeof buildSite>>;
  let sources: string[];

  beforeAll(async () => {
    outDir = await tempDir('site');
    result = await buildSite({ docsDir: DEFAULT_DOCS_DIR, outDir });
    sources = (await readdir(DEFAULT_DOCS_DIR)).filter((f) => f.endsWith('.md'));
  });

  it('has the guides the README points to', () => {
    for (const page of ['index.md', 'getting-started.md', 'core.md', 'sharelora.md']) {
      expect(sources).toContain(page);
    }
  });

  it('produces one HTML page per Markdown file, each with the full sidebar', async () => {
    expect(result.pages.map((p) => p.source).sort()).toEqual([...sources].sort());
    expect(result.pages[0]?.slug).toBe('index');
    for (const source of sources) {
      const file = join(outDir, source.replace(/\.md$/, '.html'));
      expect(existsSync(file), `${file} was not generated`).toBe(true);
      const html = await readFile(file, 'utf8');
      expect(html).toMatch(/^<!doctype html>/);
      for (const page of result.pages) expect(html).toContain(`href="${page.file}"`);
      expect(html).toContain('aria-current="page"');
    }
    expect(existsSync(join(outDir, 'style.css'))).toBe(true);
  });

  it('resolves every relative link, including #fragments', async () => {
    expect(result.brokenLinks).toEqual([]);
    expect(await findBrokenLinks(outDir)).toEqual([]);
  });

  it('rewrites links between pages from .md to .html, and every such link has a target', async () => {
    let links = 0;
    for (const source of sources) {
      const markdown = await readFile(join(DEFAULT_DOCS_DIR, source), 'utf8');
      const html = await readFile(join(outDir, source.replace(/\.md$/, '.html')), 'utf8');
      for (const m of markdown.matchAll(/\]\(((?:\.\/)?([\w.-]+)\.md)(#[^)\s]*)?\)/g)) {
        links++;
        expect(sources, `${source} links to ${m[1]}`).toContain(`${m[2]}.md`);
        expect(html).toContain(`href="${m[1].replace(/\.md$/, '.html')}${m[3] ?? ''}"`);
      }
      expect(html).not.toMatch(/href="(?![a-z]+:)[^"]*\.md(#[^"]*)?"/);
    }
    expect(links, 'the docs should link to each other').toBeGreaterThan(3);
  });
});

describe('buildSite on a fixture', () => {
  it('reports missing pages and missing fragments, and accepts good ones', async () => {
    const docsDir = await tempDir('fixture');
    const outDir = await tempDir('fixture-out');
    await writeFile(
      join(docsDir, 'index.md'),
      [
        '# Home',
        '',
        '[good](other.md) [good fragment](other.md#a-section) [self](#home) [ext](https://example.com/x.md)',
        '[missing page](missing.md) [missing fragment](other.md#nope) [asset](diagram.svg)',
      ].join('\n'),
    );
    await writeFile(join(docsDir, 'other.md'), '# Other `page`\n\n## A section\n\n## A section\n');
    await writeFile(join(docsDir, 'diagram.svg'), '<svg xmlns="http://www.w3.org/2000/svg"/>');
    await mkdir(join(docsDir, 'drafts'));
    await writeFile(join(docsDir, 'drafts', 'ignored.md'), '# not top-level');

    const result = await buildSite({ docsDir, outDir });
    expect(result.pages.map((p) => [p.slug, p.title])).toEqual([
      ['index', 'Home'],
      ['other', 'Other page'],
    ]);
    expect(result.assets).toEqual(['diagram.svg']);
    expect(result.brokenLinks).toEqual([
      { page: 'index.html', href: 'missing.html', reason: 'no such page or file' },
      { page: 'index.html', href: 'other.html#nope', reason: 'no element with id "nope"' },
    ]);
    const other = await readFile(join(outDir, 'other.html'), 'utf8');
    expect(other).toContain('<h2 id="a-section">A section</h2>');
    expect(other).toContain('<h2 id="a-section-1">A section</h2>');
    expect(other).toContain('<h1 id="other-page">Other <code>page</code></h1>');
  });

  it('refuses to build into the docs folder or one of its parents', async () => {
    const docsDir = await tempDir('guard');
    await writeFile(join(docsDir, 'index.md'), '# x\n');
    await expect(buildSite({ docsDir, outDir: docsDir })).rejects.toThrow(/refusing/);
    await expect(buildSite({ docsDir, outDir: join(docsDir, '..') })).rejects.toThrow(/refusing/);
    expect(existsSync(join(docsDir, 'index.md'))).toBe(true);
  });
});

describe('helpers', () => {
  it('rewriteDocLink maps relative .md links only', () => {
    expect(rewriteDocLink('core.md')).toBe('core.html');
    expect(rewriteDocLink('./core.md#tensors')).toBe('./core.html#tensors');
    expect(rewriteDocLink('core.md?x=1')).toBe('core.html?x=1');
    expect(rewriteDocLink('https://example.com/README.md')).toBe('https://example.com/README.md');
    expect(rewriteDocLink('/abs.md')).toBe('/abs.md');
    expect(rewriteDocLink('#section')).toBe('#section');
    expect(rewriteDocLink('notes.mdx')).toBe('notes.mdx');
  });

  it('slugify makes GitHub-style ids', () => {
    expect(slugify('ShareA, ShareB and ShareAB')).toBe('sharea-shareb-and-shareab');
    expect(slugify('`h = Wx + (alpha/r)·BAx`')).toBe('h--wx--alpharbax');
    expect(slugify('Memory & pools')).toBe('memory--pools');
  });
});
