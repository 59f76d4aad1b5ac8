// The playground runs the packages' platform-neutral code in the browser, but @sharelora/models and
// @sharelora/train also hold file-system code (checkpoints, tokenizer files, output locks) in the
// same entry, importing the Node entries of core and adapters. The playground never takes those
// paths (it trains in memory, with no output folder), so in the client bundle every Node built-in
// and Node entry resolves to a stand-in whose exports throw a clear error if anything calls them.
import { builtinModules } from 'node:module';
import { fileURLToPath } from 'node:url';

const PREFIX = '\0browser-stub:';
const RUNTIME = fileURLToPath(new URL('./node-stub-runtime.js', import.meta.url));
/** The packages' Node entries (`@sharelora/core/node` is where Dawn comes in). */
const NODE_ENTRY = /^@sharelora\/[\w-]+\/node$/;
/** Built-ins as the bundled packages import them: with `node:`, or bare (`fs/promises`). */
const BUILTINS = new Set(builtinModules);

function nodeOnly(id: string): boolean {
  return id.startsWith('node:') || BUILTINS.has(id) || NODE_ENTRY.test(id);
}

/** Module code exporting every name of `id` (as Node sees it) as a stand-in that throws when used. */
async function stubModule(id: string): Promise<string> {
  const names = Object.keys(await import(id)).filter((n) => n !== 'default' && /^[A-Za-z_$][\w$]*$/.test(n));
  const lines = [
    `import { stub } from ${JSON.stringify(RUNTIME)};`,
    `export default stub(${JSON.stringify(id)});`,
    ...names.map((n) => `export const ${n} = stub(${JSON.stringify(`${id}.${n}`)});`),
  ];
  return lines.join('\n');
}

/** A Vite plugin (typed structurally: VitePress brings its own Vite, not the workspace's). */
export function browserStubs() {
  return {
    name: 'sharelora-browser-stubs',
    enforce: 'pre' as const,
    resolveId(id: string, _importer: string | undefined, options?: { ssr?: boolean }) {
      if (options?.ssr || !nodeOnly(id)) return null;
      return PREFIX + id;
    },
    load(id: string) {
      return id.startsWith(PREFIX) ? stubModule(id.slice(PREFIX.length)) : null;
    },
  };
}
