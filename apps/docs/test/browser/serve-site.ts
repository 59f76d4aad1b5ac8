/** Serves the built site (apps/docs/dist) on loopback, the way a static host would. */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';

export const DIST = fileURLToPath(new URL('../../dist', import.meta.url));

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript',
  '.css': 'text/css',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.woff2': 'font/woff2',
};

/** The file a URL path names: itself, its index.html, or with .html added (clean URLs). */
function fileFor(path: string): string | null {
  const base = join(DIST, normalize(path).replace(/^(\.\.[/\\])+/, ''));
  for (const f of [base, join(base, 'index.html'), `${base}.html`]) {
    if (f.startsWith(DIST) && existsSync(f) && statSync(f).isFile()) return f;
  }
  return null;
}

export interface SiteServer {
  url: string;
  close(): Promise<void>;
}

export async function serveSite(): Promise<SiteServer> {
  if (!existsSync(join(DIST, 'index.html'))) {
    throw new Error(`${DIST} has no index.html: build the site first (pnpm docs:build)`);
  }
  const server: Server = createServer((req, res) => {
    const file = fileFor(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname));
    if (!file) {
      res.writeHead(404, { 'content-type': TYPES['.html'] }).end(readFileSync(join(DIST, '404.html')));
      return;
    }
    res
      .writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' })
      .end(readFileSync(file));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
