/** Internal links of the built site, and whether each one's page and #fragment exist. */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { DIST } from './serve-site';

/** Every .html file of the site, as a path relative to dist ("api/@sharelora/core/index.html"). */
export function sitePages(): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.html')) out.push(relative(DIST, p));
    }
  };
  walk(DIST);
  return out.sort();
}

const idCache = new Map<string, Set<string>>();
function idsOf(page: string): Set<string> {
  let ids = idCache.get(page);
  if (!ids) {
    const html = readFileSync(join(DIST, page), 'utf8');
    ids = new Set([...html.matchAll(/\sid="([^"]+)"/g)].map((m) => m[1]));
    idCache.set(page, ids);
  }
  return ids;
}

/** The page a site path names, as the static server resolves it, or null. */
function pageFor(path: string, pages: Set<string>): string | null {
  const p = decodeURIComponent(path).replace(/^\//, '');
  for (const candidate of [p, `${p}index.html`, `${p}/index.html`, `${p}.html`]) {
    if (pages.has(candidate)) return candidate;
  }
  return p === '' && pages.has('index.html') ? 'index.html' : null;
}

export interface BrokenLink {
  page: string;
  href: string;
  reason: string;
}

/** Links from `page` (a site path) to other pages of the site that miss their page or fragment. */
export function brokenLinks(page: string, pages: Set<string>): BrokenLink[] {
  const html = readFileSync(join(DIST, page), 'utf8');
  const broken: BrokenLink[] = [];
  const base = new URL(`http://site/${page}`);
  for (const [, href] of html.matchAll(/<a\s[^>]*href="([^"]+)"/g)) {
    const url = new URL(href.replace(/&amp;/g, '&'), base);
    if (url.host !== 'site') continue;
    const target = pageFor(url.pathname, pages);
    if (!target) {
      broken.push({ page, href, reason: 'no such page' });
    } else if (url.hash && !idsOf(target).has(decodeURIComponent(url.hash.slice(1)))) {
      broken.push({ page, href, reason: `no id ${url.hash} in ${target}` });
    }
  }
  return broken;
}
