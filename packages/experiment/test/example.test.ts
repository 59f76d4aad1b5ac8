import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, it } from 'vitest';

// The README's example, run against the built package as a user would (a file inside the package
// imports it by name).
const readme = readFileSync(fileURLToPath(new URL('../README.md', import.meta.url)), 'utf8');
const script = fileURLToPath(new URL(`../.readme-example-${process.pid}.mjs`, import.meta.url));
afterAll(() => rmSync(script, { force: true }));

it("the README's example lists the cells and a report of pending cells", () => {
  const code = /```ts\n([\s\S]*?)```/.exec(readme)?.[1];
  expect(code).toBeDefined();
  writeFileSync(script, code as string);
  const r = spawnSync(process.execPath, [script], { encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  expect(r.stdout).toMatch(
    /^0 [0-9a-f]{12} tiny\/add\/lora\/seed-0\n1 [0-9a-f]{12} tiny\/add\/lora\/seed-1\n/,
  );
  expect(r.stdout).toContain('| tiny | share-a | 0/2 |');
  expect(r.stdout).toContain('Not run yet: tiny/add/lora/seed-0');
});
