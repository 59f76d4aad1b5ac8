import type { Readable } from 'node:stream';

/** Calls `onLine` with each newline-terminated line of `stream` (without the newline), as it arrives. */
export function onLines(stream: Readable, onLine: (line: string) => void): void {
  let pending = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    const parts = (pending + chunk).split('\n');
    pending = parts.pop() ?? '';
    for (const line of parts) onLine(line);
  });
  stream.on('error', () => {});
}
