import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitepress';
import { listGuides } from './guides';
import { browserStubs } from './node-stubs';

const FAVICON =
  '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" fill="#3451b2"/><path d="M4 11h8M4 8h5M4 5h8" stroke="#fff" stroke-width="1.6"/></svg>';
const docsDir = fileURLToPath(new URL('../../../docs', import.meta.url));
const apiSidebarFile = `${docsDir}/api/typedoc-sidebar.json`;
if (!existsSync(apiSidebarFile)) {
  throw new Error(
    `${apiSidebarFile} is missing: run \`pnpm --filter @sharelora/docs api\` (docs:build does)`,
  );
}
const apiSidebar = JSON.parse(readFileSync(apiSidebarFile, 'utf8'));
const vueDir = dirname(createRequire(import.meta.url).resolve('vue/package.json'));
const guides = listGuides(docsDir);

export default defineConfig({
  title: 'sharelora',
  description: 'LoRA and ShareLoRA fine-tuning on WebGPU, in TypeScript',
  // An inline icon, so browsers do not ask for /favicon.ico.
  head: [['link', { rel: 'icon', href: `data:image/svg+xml,${encodeURIComponent(FAVICON)}` }]],
  srcDir: docsDir,
  outDir: fileURLToPath(new URL('../dist', import.meta.url)),
  cacheDir: fileURLToPath(new URL('./cache', import.meta.url)),
  cleanUrls: false,
  lastUpdated: false,
  // Dead links fail the build; the browser test also checks every #fragment.
  ignoreDeadLinks: false,
  markdown: { theme: { light: 'github-light', dark: 'github-dark' } },
  themeConfig: {
    nav: [
      { text: 'Guides', link: '/getting-started' },
      { text: 'API', link: '/api/' },
      { text: 'Playground', link: '/playground' },
    ],
    sidebar: {
      '/api/': [{ text: 'API reference', link: '/api/', items: apiSidebar }],
      '/': [
        {
          text: 'Guides',
          items: guides.map((g) => ({ text: g.title, link: g.slug === 'index' ? '/' : `/${g.slug}` })),
        },
        { text: 'Try it', items: [{ text: 'Playground', link: '/playground' }] },
        { text: 'Reference', items: [{ text: 'API reference', link: '/api/' }] },
      ],
    },
    search: { provider: 'local' },
    outline: { level: [2, 3] },
  },
  vite: {
    plugins: [browserStubs()],
    // The pages live outside this package (docs/ at the repository root): resolve Vue from here.
    resolve: { alias: [{ find: /^vue($|\/)/, replacement: `${vueDir}$1` }] },
    server: { fs: { allow: [fileURLToPath(new URL('../../..', import.meta.url))] } },
  },
});
