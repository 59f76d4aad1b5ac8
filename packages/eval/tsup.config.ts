import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { defineConfig, type Options } from 'tsup';

type EsbuildPlugin = NonNullable<Options['esbuildPlugins']>[number];

/** An eager glob call with a literal pattern: `./dir/` (optional), then `prefix*suffix`. */
const GLOB_CALL =
  /import\.meta\.glob(?:<[^>()]*>)?\(\s*(['"])\.\/((?:[\w.-]+\/)*)([\w.-]*)\*([\w.-]*)\1\s*,\s*\{\s*eager:\s*true\s*,?\s*\}\s*\)/g;

/**
 * Expands eager `import.meta.glob` calls as vite does in the tests (esbuild has no globs): into an
 * object of the matching modules' namespaces keyed `./dir/name.ext`, sorted, the importer and
 * dotfiles left out. The task registry reads src/tasks/ this way, so a task is one file there. Any
 * other form of the call fails the build rather than bundling a half-empty registry.
 */
export const importMetaGlob: EsbuildPlugin = {
  name: 'import-meta-glob',
  setup(build) {
    build.onLoad({ filter: /\.[cm]?ts$/ }, (args) => {
      const source = readFileSync(args.path, 'utf8');
      if (!source.includes('import.meta.glob')) return undefined;
      const imports: string[] = [];
      const contents = source.replace(
        GLOB_CALL,
        (_call, _quote, dir: string, prefix: string, suffix: string) => {
          const folder = join(dirname(args.path), dir);
          const names = readdirSync(folder, { withFileTypes: true })
            .filter((e) => e.isFile() && !e.name.startsWith('.') && join(folder, e.name) !== args.path)
            .map((e) => e.name)
            .filter(
              (n) => n.length >= prefix.length + suffix.length && n.startsWith(prefix) && n.endsWith(suffix),
            )
            .sort();
          const entries = names.map((name) => {
            const id = `__glob_${imports.length}`;
            imports.push(`import * as ${id} from ${JSON.stringify(`./${dir}${name}`)};`);
            return `${JSON.stringify(`./${dir}${name}`)}: ${id}`;
          });
          return `({ ${entries.join(', ')} })`;
        },
      );
      if (/import\.meta\.glob\b\s*[<(]/.test(contents))
        throw new Error(
          `${args.path}: only import.meta.glob('./dir/prefix*suffix', { eager: true }) is expanded`,
        );
      // On the first line, so that the source map's lines still match the file's.
      return { contents: `${imports.join(' ')} ${contents}`, loader: 'ts' };
    });
  },
};

export default defineConfig({
  entry: { index: 'src/index.ts' },
  format: ['esm'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'es2022',
  esbuildPlugins: [importMetaGlob],
});
