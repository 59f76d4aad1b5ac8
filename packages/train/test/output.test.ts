/** Safe outputs: the advisory lock (holders, stale locks, release on exit) and the output-path checks. */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { link, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  checkOutputPath,
  LOCK_FILE,
  type LockHolder,
  lockOutputDir,
  lockOutputFile,
  OutputLockedError,
  UnsafeOutputError,
} from '../src/index.js';

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'sharelora-output-'));
});
afterAll(() => rm(root, { recursive: true, force: true }));

/** A pid that no process has any more: a child that has already exited. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], {
    encoding: 'utf8',
  });
  return Number(r.stdout);
}

const holderFile = (pid: number, host = hostname()): string =>
  JSON.stringify({
    pid,
    host,
    started: '2026-01-01T00:00:00.000Z',
    command: 'sharelora train',
  } satisfies LockHolder);

describe('output locks', () => {
  it('a second lock on a held directory is refused, naming the holder; release frees it', async () => {
    const dir = join(root, 'held');
    const lock = await lockOutputDir(dir);
    const onDisk = JSON.parse(await readFile(join(dir, LOCK_FILE), 'utf8'));
    expect(onDisk).toMatchObject({ pid: process.pid, host: hostname() });
    const refused = await lockOutputDir(dir).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(OutputLockedError);
    expect((refused as OutputLockedError).holder?.pid).toBe(process.pid);
    expect((refused as Error).message).toContain(`process ${process.pid} on ${hostname()}`);
    lock.release();
    expect(existsSync(join(dir, LOCK_FILE))).toBe(false);
    (await lockOutputDir(dir)).release();
  });

  it('a lock left by a dead process on this host is taken over', async () => {
    const dir = join(root, 'stale');
    await mkdir(dir);
    await writeFile(join(dir, LOCK_FILE), holderFile(deadPid()));
    const lock = await lockOutputDir(dir);
    expect(JSON.parse(await readFile(join(dir, LOCK_FILE), 'utf8')).pid).toBe(process.pid);
    lock.release();
  });

  it('a lock from another host, or of a live process, is refused and left in place', async () => {
    const dir = join(root, 'foreign');
    await mkdir(dir);
    // The test runner's parent runs, whoever it is.
    for (const text of [holderFile(deadPid(), 'some-other-host'), holderFile(process.ppid)]) {
      await writeFile(join(dir, LOCK_FILE), text);
      await expect(lockOutputDir(dir)).rejects.toThrow(OutputLockedError);
      expect(await readFile(join(dir, LOCK_FILE), 'utf8')).toBe(text);
    }
    await expect(lockOutputDir(dir)).rejects.toThrow(`process ${process.ppid} on ${hostname()}`);
  });

  it('a directory created for the lock is removed again when nothing was written', async () => {
    const dir = join(root, 'fresh', 'deeper');
    (await lockOutputDir(dir)).release();
    expect(existsSync(join(root, 'fresh'))).toBe(false);
    const kept = join(root, 'kept');
    const lock = await lockOutputDir(kept);
    await writeFile(join(kept, 'metrics.jsonl'), '');
    lock.release();
    expect(existsSync(join(kept, 'metrics.jsonl'))).toBe(true);
  });

  it('a file lock sits beside the file, so other files of the directory stay free', async () => {
    const a = await lockOutputFile(join(root, 'results', 'shard-0.json'));
    const b = await lockOutputFile(join(root, 'results', 'shard-1.json'));
    expect(existsSync(join(root, 'results', 'shard-0.json.lock'))).toBe(true);
    await expect(lockOutputFile(join(root, 'results', 'shard-0.json'))).rejects.toThrow(OutputLockedError);
    a.release();
    b.release();
  });

  it('a process that exits without releasing (process.exit) leaves no lock behind', async () => {
    const dir = join(root, 'exited');
    const dist = fileURLToPath(new URL('../dist/index.js', import.meta.url));
    const script = `import { lockOutputDir } from ${JSON.stringify(dist)};
      await lockOutputDir(${JSON.stringify(dir)});
      await import('node:fs').then((fs) => fs.writeFileSync(${JSON.stringify(join(dir, 'out.txt'))}, ''));
      process.exit(3);`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(3);
    expect(existsSync(join(dir, 'out.txt'))).toBe(true);
    expect(existsSync(join(dir, LOCK_FILE))).toBe(false);
  });
});

describe('output path checks', () => {
  let data: string;
  let model: string;
  beforeAll(async () => {
    data = join(root, 'in', 'data.jsonl');
    model = join(root, 'in', 'model');
    await mkdir(model, { recursive: true });
    await writeFile(data, '{"text": "x"}\n');
    await writeFile(join(model, 'config.json'), '{}');
  });
  const inputs = () => [
    { flag: '--data', path: data },
    { flag: '--model', path: model },
  ];
  const refused = (out: string, opts: Parameters<typeof checkOutputPath>[1]) =>
    checkOutputPath(out, opts).then(
      () => 'accepted',
      (e: unknown) => {
        expect(e).toBeInstanceOf(UnsafeOutputError);
        return (e as Error).message;
      },
    );

  it('refuses the filesystem root, system and shared directories', async () => {
    for (const out of ['/', '/usr/lib/run', '/etc', '/tmp', '/home', '/proc/self'])
      expect(await refused(out, { kind: 'directory' })).toMatch(/refusing to write into/);
    expect(await refused(join(root, 'run'), { kind: 'directory' })).toBe('accepted');
  });

  it('refuses an input, another name for it, or a directory containing it', async () => {
    const alias = join(root, 'alias.jsonl');
    const hard = join(root, 'hard.jsonl');
    await symlink(data, alias);
    await link(data, hard);
    for (const out of [data, alias, hard])
      expect(await refused(out, { kind: 'file', inputs: inputs() })).toMatch(/is the --data input/);
    expect(await refused(model, { kind: 'directory', inputs: inputs(), overwriteModel: true })).toMatch(
      /is the --model input/,
    );
    expect(await refused(join(root, 'in'), { kind: 'directory', inputs: inputs() })).toMatch(
      /contains the --data input/,
    );
    // A new file beside an input, or inside the model directory, is fine.
    expect(await refused(join(root, 'in', 'results.json'), { kind: 'file', inputs: inputs() })).toBe(
      'accepted',
    );
    expect(await refused(join(model, 'eval.json'), { kind: 'file', inputs: inputs() })).toBe('accepted');
    // Anything inside a data folder is input.
    expect(
      await refused(join(root, 'in', 'new.json'), {
        kind: 'file',
        inputs: [{ flag: '--data', path: join(root, 'in'), wholeTree: true }],
      }),
    ).toMatch(/inside the --data folder/);
  });

  it('refuses a file where a directory is meant and the other way round', async () => {
    expect(await refused(data, { kind: 'directory' })).toMatch(/is an existing file/);
    expect(await refused(model, { kind: 'file' })).toMatch(/is a directory/);
  });

  it('refuses a directory holding a model or adapter unless overwriteModel', async () => {
    const previous = join(root, 'previous');
    await mkdir(previous);
    await writeFile(join(previous, 'adapter_config.json'), '{}');
    expect(await refused(previous, { kind: 'directory' })).toMatch(/holds a trained adapter/);
    expect(await refused(previous, { kind: 'directory', overwriteModel: true })).toBe('accepted');
  });
});
