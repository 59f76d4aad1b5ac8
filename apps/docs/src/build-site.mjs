#!/usr/bin/env node
// Builds the static docs site: every docs/*.md becomes an HTML page with a navigation sidebar.
// Links between pages (`core.md`, `sharelora.md#shareb`) are rewritten to the generated `.html`
// files, and the build fails when a relative link or #fragment does not resolve.
//
// Usage: node src/build-site.mjs [--docs DIR] [--out DIR]   (defaults: <repo>/docs, apps/docs/dist)
import { copyFile, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Marked } from 'marked';

const here = dirname(fileURLToPath(import.meta.url));
export const DEFAULT_DOCS_DIR = resolve(here, '../../../docs');
export const DEFAULT_OUT_DIR = resolve(here, '../dist');

/** Pages listed first in the sidebar, in this order; any other page follows alphabetically. */
export const NAV_ORDER = ['index', 'getting-started', 'core', 'sharelora'];

/**
 * @typedef {{ slug: string, title: string, source: string, file: string }} Page
 * @typedef {{ page: string, href: string, reason: string }} BrokenLink
 * @typedef {{ pages: Page[], assets: string[], brokenLinks: BrokenLink[] }} BuildResult
 */

/** @param {string} s */
export function escapeHtml(s) {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * A GitHub-style heading id: lower case, punctuation dropped, spaces to dashes.
 * @param {string} text
 */
export function slugify(text) {
  return text
    .replace(/<[^>]*>/g, '')
    .toLowerCase()
    .trim()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

const SCHEME = /^[a-z][a-z0-9+.-]*:/i;

/**
 * `page.md`, `page.md#x`, `./page.md?y` -> the same with `.html`; anything else is left alone.
 * @param {string} href
 */
export function rewriteDocLink(href) {
  if (SCHEME.test(href) || href.startsWith('/') || href.startsWith('#')) return href;
  return href.replace(/^([^?#]*)\.md(?=$|[?#])/i, '$1.html');
}

/** @param {string} markdown @param {string} fallback */
function titleOf(markdown, fallback) {
  const m = /^#[ \t]+(.+?)[ \t#]*$/m.exec(markdown);
  return m ? m[1].replace(/[`*_]/g, '').trim() : fallback;
}

/** @param {string} markdown */
function renderMarkdown(markdown) {
  /** @type {Map<string, number>} */
  const seen = new Map();
  const marked = new Marked({
    gfm: true,
    walkTokens(token) {
      if (token.type === 'link' || token.type === 'image') token.href = rewriteDocLink(token.href);
    },
    renderer: {
      heading({ tokens, depth, text }) {
        const base = slugify(text) || 'section';
        const n = seen.get(base) ?? 0;
        seen.set(base, n + 1);
        const id = n === 0 ? base : `${base}-${n}`;
        return `<h${depth} id="${escapeHtml(id)}">${this.parser.parseInline(tokens)}</h${depth}>\n`;
      },
    },
  });
  return /** @type {string} */ (marked.parse(markdown, { async: false }));
}

/** @param {Page[]} pages @param {Page} current */
function navHtml(pages, current) {
  const items = pages.map((p) => {
    const attr = p === current ? ' aria-current="page"' : '';
    return `      <li><a href="${escapeHtml(p.file)}"${attr}>${escapeHtml(p.title)}</a></li>`;
  });
  return `<nav class="sidebar" aria-label="Documentation">
    <a class="brand" href="index.html">sharelora</a>
    <ul>
${items.join('\n')}
    </ul>
  </nav>`;
}

/** @param {Page[]} pages @param {Page} page @param {string} body */
function pageHtml(pages, page, body) {
  return `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>${escapeHtml(page.title)} · sharelora docs</title>
  <link rel="stylesheet" href="style.css">
</head>
<body>
  ${navHtml(pages, page)}
  <main>
${body}
  </main>
</body>
</html>
`;
}

const STYLE = `*{box-sizing:border-box}
body{margin:0;display:flex;min-height:100vh;font:16px/1.6 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1f2328;background:#fff}
.sidebar{flex:0 0 15rem;padding:1.5rem 1rem;border-right:1px solid #d0d7de;background:#f6f8fa;position:sticky;top:0;height:100vh;overflow:auto}
.sidebar .brand{display:block;font-weight:700;font-size:1.2rem;margin-bottom:1rem;color:inherit;text-decoration:none}
.sidebar ul{list-style:none;margin:0;padding:0}
.sidebar li a{display:block;padding:.25rem .5rem;border-radius:6px;color:#1f2328;text-decoration:none}
.sidebar li a:hover{background:#eaeef2}
.sidebar li a[aria-current=page]{background:#ddf4ff;font-weight:600}
main{flex:1;max-width:52rem;padding:1.5rem 2.5rem 4rem}
a{color:#0969da}
code{font:.9em ui-monospace,SFMono-Regular,Menlo,monospace;background:#f6f8fa;padding:.1em .3em;border-radius:4px}
pre{background:#f6f8fa;padding:1rem;border-radius:6px;overflow:auto}
pre code{background:none;padding:0}
table{border-collapse:collapse;margin:1rem 0}
th,td{border:1px solid #d0d7de;padding:.35rem .7rem;text-align:left}
th{background:#f6f8fa}
@media (max-width:48rem){body{display:block}.sidebar{position:static;height:auto;border-right:0;border-bottom:1px solid #d0d7de}main{padding:1rem}}
`;

/** @param {string} a @param {string} b */
function byNavOrder(a, b) {
  const ia = NAV_ORDER.indexOf(a);
  const ib = NAV_ORDER.indexOf(b);
  if (ia !== -1 || ib !== -1) return (ia === -1 ? Infinity : ia) - (ib === -1 ? Infinity : ib);
  return a.localeCompare(b);
}

/**
 * Converts docsDir/*.md into outDir/*.html (plus style.css and any other top-level files of
 * docsDir, copied as assets), then checks every relative link in the output.
 * @param {{ docsDir?: string, outDir?: string }} [options]
 * @returns {Promise<BuildResult>}
 */
export async function buildSite({ docsDir = DEFAULT_DOCS_DIR, outDir = DEFAULT_OUT_DIR } = {}) {
  docsDir = resolve(docsDir);
  outDir = resolve(outDir);
  if (docsDir === outDir || (docsDir + sep).startsWith(outDir + sep)) {
    throw new Error(`refusing to build into ${outDir}: it would delete the docs folder ${docsDir}`);
  }
  const entries = (await readdir(docsDir, { withFileTypes: true })).filter(
    (e) => e.isFile() && !e.name.startsWith('.'),
  );
  const sources = entries.filter((e) => e.name.toLowerCase().endsWith('.md')).map((e) => e.name);
  const assets = entries.filter((e) => !e.name.toLowerCase().endsWith('.md')).map((e) => e.name);
  if (sources.length === 0) throw new Error(`no Markdown files in ${docsDir}`);

  /** @type {{ page: Page, markdown: string }[]} */
  const loaded = [];
  for (const source of sources) {
    const markdown = await readFile(join(docsDir, source), 'utf8');
    const slug = source.slice(0, -'.md'.length);
    loaded.push({ page: { slug, title: titleOf(markdown, slug), source, file: `${slug}.html` }, markdown });
  }
  loaded.sort((x, y) => byNavOrder(x.page.slug, y.page.slug));
  const pages = loaded.map((l) => l.page);

  await rm(outDir, { recursive: true, force: true });
  await mkdir(outDir, { recursive: true });
  await writeFile(join(outDir, 'style.css'), STYLE);
  for (const { page, markdown } of loaded) {
    await writeFile(join(outDir, page.file), pageHtml(pages, page, renderMarkdown(markdown)));
  }
  for (const asset of assets) await copyFile(join(docsDir, asset), join(outDir, asset));

  return { pages, assets, brokenLinks: await findBrokenLinks(outDir) };
}

/** @param {string} path */
async function isFile(path) {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

/**
 * Every relative href/src in outDir's HTML files whose target file, or #fragment id, is missing.
 * @param {string} outDir
 * @returns {Promise<BrokenLink[]>}
 */
export async function findBrokenLinks(outDir) {
  /** @type {BrokenLink[]} */
  const broken = [];
  /** @type {Map<string, Set<string>>} */
  const idsCache = new Map();
  /** @param {string} file */
  const idsOf = async (file) => {
    let ids = idsCache.get(file);
    if (!ids) {
      const html = await readFile(file, 'utf8');
      ids = new Set([...html.matchAll(/\sid="([^"]*)"/g)].map((m) => decodeEntities(m[1])));
      idsCache.set(file, ids);
    }
    return ids;
  };
  const htmlFiles = (await readdir(outDir)).filter((f) => f.endsWith('.html'));
  for (const name of htmlFiles) {
    const file = join(outDir, name);
    const html = await readFile(file, 'utf8');
    for (const m of html.matchAll(/\s(?:href|src)="([^"]*)"/g)) {
      const href = decodeEntities(m[1]);
      if (SCHEME.test(href) || href.startsWith('//') || href.startsWith('/')) continue;
      const hash = href.indexOf('#');
      const pathPart = (hash === -1 ? href : href.slice(0, hash)).replace(/\?.*$/, '');
      const fragment = hash === -1 ? '' : decodeURIComponent(href.slice(hash + 1));
      const target = pathPart === '' ? file : resolve(outDir, decodeURIComponent(pathPart));
      if (relative(outDir, target).startsWith('..')) {
        broken.push({ page: name, href, reason: 'points outside the site' });
      } else if (!(await isFile(target))) {
        broken.push({ page: name, href, reason: 'no such page or file' });
      } else if (fragment && target.endsWith('.html') && !(await idsOf(target)).has(fragment)) {
        broken.push({ page: name, href, reason: `no element with id "${fragment}"` });
      }
    }
  }
  return broken;
}

/** @param {string} s */
function decodeEntities(s) {
  return s
    .replace(/&#(\d+);/g, (_, d) => String.fromCharCode(Number(d)))
    .replace(/&quot;/g, '"')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');
}

/** @param {string[]} argv */
async function main(argv) {
  /** @type {{ docsDir?: string, outDir?: string }} */
  const options = {};
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[i + 1];
    if ((flag === '--docs' || flag === '--out') && value && !value.startsWith('--')) {
      if (flag === '--docs') options.docsDir = value;
      else options.outDir = value;
      i++;
    } else {
      console.error(`build-site: bad argument '${flag}' (usage: build-site.mjs [--docs DIR] [--out DIR])`);
      return 2;
    }
  }
  const result = await buildSite(options);
  const out = relative(process.cwd(), options.outDir ?? DEFAULT_OUT_DIR) || '.';
  console.log(`docs: ${result.pages.length} pages, ${result.assets.length} assets -> ${out}`);
  if (result.brokenLinks.length > 0) {
    for (const b of result.brokenLinks)
      console.error(`docs: broken link in ${b.page}: ${b.href} (${b.reason})`);
    return 1;
  }
  return 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err) => {
      console.error(`build-site: ${err instanceof Error ? err.message : err}`);
      process.exitCode = 1;
    },
  );
}
