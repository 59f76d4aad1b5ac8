// The guides are the Markdown files in the repository's docs/ folder: the site reads them in
// place, so docs/ stays the single source. Their sidebar order and titles come from the files.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** Guides listed first, in this order; any other guide follows alphabetically. */
const ORDER = ['index', 'getting-started', 'quickstart', 'core', 'sharelora'];
/** Pages in docs/ that are not guides (they have their own place in the navigation). */
const NOT_GUIDES = ['playground'];

export interface Guide {
  slug: string;
  title: string;
}

/** The first level-one heading, without Markdown emphasis, or the file's slug. */
export function titleOf(markdown: string, fallback: string): string {
  const m = /^#[ \t]+(.+?)[ \t#]*$/m.exec(markdown);
  return m ? m[1].replace(/[`*_]/g, '').trim() : fallback;
}

export function listGuides(docsDir: string): Guide[] {
  const slugs = readdirSync(docsDir)
    .filter((f) => f.endsWith('.md'))
    .map((f) => f.slice(0, -3))
    .filter((s) => !NOT_GUIDES.includes(s));
  const rank = (s: string) => (ORDER.includes(s) ? ORDER.indexOf(s) : ORDER.length);
  slugs.sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
  return slugs.map((slug) => ({
    slug,
    title: titleOf(readFileSync(join(docsDir, `${slug}.md`), 'utf8'), slug),
  }));
}
