/**
 * `import.meta.glob` with eager imports: vite expands it in the tests, the plugin in tsup.config.ts
 * in the build, both into the modules matching a literal `./dir/*.ext` pattern (the importer left
 * out), keyed by their paths relative to the importer.
 */
interface ImportMeta {
  glob<M = Record<string, unknown>>(pattern: string, options: { eager: true }): Record<string, M>;
}
