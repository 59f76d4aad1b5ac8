/**
 * The built site in headless Chromium (WebGPU on SwiftShader): every guide, the playground and the
 * API index pages load without a console error, every internal link of every page resolves (page
 * and #fragment), each package's runtime exports have API pages, and a playground run trains every
 * method. Build the site first (`pnpm docs:build`; `pnpm test` does). Set DOCS_SCREENSHOTS=DIR to
 * keep screenshots of the home page, an API page and the finished playground.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium } from '../../../../packages/core/test/chromium';
import { brokenLinks, sitePages } from './links';
import { DIST, type SiteServer, serveSite } from './serve-site';

const PACKAGES = ['core', 'adapters', 'models', 'train', 'eval'] as const;
/** Each documented entry: what to import, and its folder in the API reference. */
const ENTRIES: Array<[specifier: string, apiDir: string]> = [
  ['@sharelora/core/browser', 'core'],
  ['@sharelora/core/node', 'core/node'],
  ['@sharelora/adapters', 'adapters'],
  ['@sharelora/adapters/node', 'adapters/node'],
  ['@sharelora/models', 'models'],
  ['@sharelora/train', 'train'],
  ['@sharelora/eval', 'eval'],
];
const SHOTS = process.env.DOCS_SCREENSHOTS;

let site: SiteServer;
let browser: Browser;
let pages: string[];

beforeAll(async () => {
  site = await serveSite();
  browser = await launchChromium();
  pages = sitePages();
  if (SHOTS) mkdirSync(SHOTS, { recursive: true });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await site?.close();
});

/** Opens `path`, collecting console errors and uncaught exceptions. */
async function open(path: string, viewport = { width: 1280, height: 900 }) {
  const page = await browser.newPage({ viewport });
  const errors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => errors.push(`exception: ${e.message}`));
  await page.goto(`${site.url}/${path}`, { waitUntil: 'load' });
  return { page, errors };
}

async function shot(page: Page, name: string) {
  if (SHOTS) await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

describe('the docs site in Chromium', () => {
  it('loads every guide, the playground and each API module page without a console error', async () => {
    const apiIndexes = pages.filter((p) => /^api\/@sharelora\/[\w-]+(\/node)?\/index\.html$/.test(p));
    expect(apiIndexes.length).toBeGreaterThanOrEqual(PACKAGES.length);
    const targets = [
      ...pages.filter((p) => !p.includes('/') && p !== '404.html'),
      'api/index.html',
      ...apiIndexes,
    ];
    for (const path of targets) {
      const { page, errors } = await open(path);
      // Hydration and the charts run after load; give them a moment to report.
      await page.waitForTimeout(300);
      expect(errors, path).toEqual([]);
      expect(await page.locator('.VPContent h1').count(), `${path} has a heading`).toBeGreaterThan(0);
      if (path === 'index.html') await shot(page, 'home');
      for (const chart of await page.locator('figure[data-chart]').all()) {
        // Each chart draws an SVG from its data file.
        await chart.locator('svg').first().waitFor();
        if (SHOTS)
          await chart.screenshot({
            path: join(SHOTS, `chart-${await chart.getAttribute('data-chart')}.png`),
          });
      }
      await page.close();
    }
  }, 180_000);

  it('resolves every internal link of every page, #fragments included', () => {
    const all = new Set(pages);
    const broken = pages.flatMap((p) => brokenLinks(p, all));
    expect(broken).toEqual([]);
  }, 60_000);

  it("has an API page for each package entry's runtime exports, listed on the entry's page", async () => {
    for (const [specifier, apiDir] of ENTRIES) {
      const mod = (await import(specifier)) as Record<string, unknown>;
      const index = readFileSync(join(DIST, 'api/@sharelora', apiDir, 'index.html'), 'utf8');
      // A Node entry re-exports the platform-neutral one: those pages live in the package's folder.
      const pkgDir = `api/@sharelora/${apiDir.split('/')[0]}/`;
      // `_name` exports are the packages' test hooks, not API; a namespace's page is its folder's index.
      const hasPage = (name: string) =>
        pages.some(
          (p) =>
            p.startsWith(pkgDir) &&
            (p.endsWith(`/${name}.html`) || p.endsWith(`/namespaces/${name}/index.html`)),
        );
      const missing = Object.keys(mod).filter(
        (name) => (!name.startsWith('_') && !hasPage(name)) || !index.includes(`>${name}<`),
      );
      expect(missing, specifier).toEqual([]);
    }
    const { page, errors } = await open('api/@sharelora/adapters/functions/injectAdapter.html');
    expect(errors).toEqual([]);
    await shot(page, 'api-injectAdapter');
    await page.close();
  });

  it('runs the playground (?autorun=1&steps=20) to done, and every method’s loss falls', async () => {
    const { page, errors } = await open('playground.html?autorun=1&steps=20', { width: 1280, height: 1800 });
    await page.waitForSelector('#playground[data-state="running"], #playground[data-state="done"]');
    await page.waitForSelector('#playground[data-state="done"], #playground[data-state="error"]', {
      timeout: 480_000,
    });
    const state = await page.getAttribute('#playground', 'data-state');
    expect(
      state,
      (await page
        .locator('.playground .danger')
        .textContent()
        .catch(() => '')) ?? '',
    ).toBe('done');
    const results = JSON.parse((await page.textContent('#playground-results')) ?? '{}') as {
      methods: Array<{
        method: string;
        trainable: number;
        optimizerBytes: number;
        losses: number[];
        msPerStep: number;
      }>;
    };
    expect(results.methods.map((m) => m.method)).toEqual(['lora', 'share-a', 'share-b', 'share-ab']);
    for (const m of results.methods) {
      expect(m.losses).toHaveLength(20);
      expect(m.losses[m.losses.length - 1], m.method).toBeLessThan(m.losses[0]);
      expect(m.optimizerBytes, m.method).toBe(8 * m.trainable);
      expect(m.msPerStep, m.method).toBeGreaterThan(0);
    }
    // The in-browser step time, for the benchmarks page (SwiftShader here, not a GPU).
    console.log(
      `playground ms/step in Chromium: ${results.methods.map((m) => `${m.method} ${m.msPerStep.toFixed(1)}`).join(', ')}`,
    );
    const trainable = Object.fromEntries(results.methods.map((m) => [m.method, m.trainable]));
    expect(trainable['share-a']).toBeLessThan(trainable.lora);
    expect(trainable['share-ab']).toBeLessThan(trainable['share-a']);
    await page.waitForSelector('.replies li');
    expect(await page.locator('.replies li').count()).toBe(4);
    expect(errors).toEqual([]);
    await shot(page, 'playground-done');
    await page.close();
  }, 540_000);
});

describe('without WebGPU', () => {
  it('says what to enable, in state error', async () => {
    const page = await browser.newPage();
    await page.addInitScript(() => {
      // As in a browser that does not expose WebGPU.
      delete (Navigator.prototype as { gpu?: unknown }).gpu;
    });
    await page.goto(`${site.url}/playground.html`);
    await page.waitForSelector('#playground[data-state="error"]');
    expect(await page.textContent('#playground')).toContain('enable-unsafe-webgpu');
    await page.close();
  });
});
