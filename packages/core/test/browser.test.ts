import { existsSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium } from './chromium.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const TYPES: Record<string, string> = {
  '.js': 'text/javascript',
  '.html': 'text/html',
  '.map': 'application/json',
};

/** Serves the package folder (dist/ and the test page) on loopback. */
function serve(): Promise<Server> {
  const server = createServer((req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)).replace(
      /^(\.\.[/\\])+/,
      '',
    );
    const file = join(ROOT, path === '/' ? 'test/browser/page.html' : path);
    if (!file.startsWith(ROOT) || !existsSync(file)) {
      res.writeHead(404).end();
      return;
    }
    res
      .writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' })
      .end(readFileSync(file));
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

describe('browser entry on navigator.gpu (headless Chromium)', () => {
  let server: Server;
  beforeAll(async () => {
    server = await serve();
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it('initBrowser, the kernel self-check and a training loop work in the browser', async () => {
    const browser = await launchChromium();
    try {
      const page = await browser.newPage();
      const port = (server.address() as AddressInfo).port;
      await page.goto(`http://127.0.0.1:${port}/`);
      await page.waitForFunction(
        () => (window as unknown as { result?: unknown }).result !== undefined,
        null,
        {
          timeout: 240_000,
        },
      );
      const result = await page.evaluate(
        () => (window as unknown as { result: Record<string, unknown> }).result,
      );
      expect(result.ok, String(result.error)).toBe(true);
      const checks = result.checks as Array<{ op: string; ok: boolean; relError: number }>;
      for (const c of checks) expect(c.ok, `${c.op}: ${c.relError}`).toBe(true);
      const losses = result.losses as number[];
      expect(losses[losses.length - 1]).toBeLessThan(losses[0] * 0.5);
    } finally {
      await browser.close();
    }
  });
});
