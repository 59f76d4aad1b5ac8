/**
 * Every `sharelora` command line in the guides and the README names a real command and only flags
 * that command's --help lists, so the docs cannot drift from the CLI unnoticed.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runCli } from './run-cli.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const files = [
  join(repoRoot, 'README.md'),
  ...readdirSync(join(repoRoot, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => join(repoRoot, 'docs', f)),
];

interface Invocation {
  file: string;
  command: string;
  flags: string[];
}

/** The `sharelora …` invocations of a Markdown file's sh/bash code blocks. */
function invocations(file: string): Invocation[] {
  const out: Invocation[] = [];
  const blocks = readFileSync(file, 'utf8').matchAll(/^```(?:sh|bash|shell)\n([\s\S]*?)^```/gm);
  for (const [, body] of blocks) {
    const text = body
      .replace(/\\\n/g, ' ')
      .replace(/'[^'\n]*'|"[^"\n]*"/g, 'ARG')
      .replace(/#.*$/gm, '');
    for (const segment of text.split(/&&|\|\||[;|\n]/)) {
      const words = segment.trim().split(/\s+/);
      const at = words.indexOf('sharelora');
      if (at < 0 || at + 1 >= words.length) continue;
      const command = words[at + 1];
      if (!/^[a-z][a-z-]*$/.test(command)) continue;
      const flags = words
        .slice(at + 2)
        .filter((w) => /^--[a-z]/.test(w))
        .map((w) => w.split('=')[0]);
      out.push({ file: file.slice(repoRoot.length + 1), command, flags });
    }
  }
  return out;
}

describe('sharelora commands in the docs', () => {
  const all = files.flatMap(invocations);

  it('finds the guides’ command lines', () => {
    expect(all.length).toBeGreaterThan(20);
  });

  it('each names a command and only flags its --help lists', () => {
    const helps = new Map<string, string>();
    const problems: string[] = [];
    for (const { file, command, flags } of all) {
      if (!helps.has(command)) {
        const r = runCli([command, '--help']);
        helps.set(command, r.status === 0 ? r.stdout : '');
      }
      const help = helps.get(command) as string;
      if (!help) {
        problems.push(`${file}: sharelora ${command}: no such command`);
        continue;
      }
      for (const flag of flags)
        if (!new RegExp(`${flag}(?![a-z-])`).test(help))
          problems.push(`${file}: sharelora ${command} ${flag}: not in its --help`);
    }
    expect(problems).toEqual([]);
  });
});
