import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/**
 * Runs an ES module snippet in a fresh Node with the core package's resolution (cwd: the package),
 * under `env` (XDG_RUNTIME_DIR defaulted to /tmp).
 */
export function runNodeModule(code: string, env: NodeJS.ProcessEnv = process.env, timeout = 120_000) {
  return spawnSync(process.execPath, ['--input-type=module', '-e', code], {
    cwd: fileURLToPath(new URL('..', import.meta.url)),
    env: { ...env, XDG_RUNTIME_DIR: env.XDG_RUNTIME_DIR ?? '/tmp' },
    encoding: 'utf8',
    timeout,
  });
}
