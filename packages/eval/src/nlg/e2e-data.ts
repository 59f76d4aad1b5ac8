/**
 * The E2E NLG challenge's files as its scorer reads them: a CSV/TSV of (MR, text) rows, with the
 * character repairs the official script applies (mis-encoded £ and é), references grouped by MR
 * in the order each MR first appears.
 */
import { parseCsv } from '../io.js';

/** One MR with all its human references, in file order. */
export interface E2eInstance {
  mr: string;
  references: string[];
}

/** The official script's repairs of mis-encoded characters, applied to every line it reads. */
export function repairE2eText(s: string): string {
  return s
    .replace(/\ufeff/g, '')
    .replace(/Ł/g, '£')
    .replace(/Â£/g, '£')
    .replace(/Ã©/g, 'é')
    .replace(/ã©/g, 'é');
}

/**
 * Rows of an E2E CSV (comma) or TSV (tab, when the header has one): [MR, text] per row, the header
 * (which must name an MR column first) dropped.
 */
export function parseE2eRows(text: string, file: string): Array<[string, string]> {
  const clean = repairE2eText(text);
  const firstLine = clean.slice(0, clean.indexOf('\n') >>> 0);
  const rows = parseCsv(clean, file, firstLine.includes('\t') ? '\t' : ',');
  if (rows.length === 0 || !/^(mr|src|source|meaning)/i.test(rows[0].value[0] ?? ''))
    throw new Error(
      `${file}: expected a header whose first column is the MR ("mr"), got ${JSON.stringify(rows[0]?.value)}`,
    );
  return rows.slice(1).map((r) => {
    if (r.value.length < 2)
      throw new Error(`${file}:${r.line}: expected an MR and a text, got ${r.value.length} field(s)`);
    return [r.value[0], r.value[1]];
  });
}

/** References grouped by MR, MRs in the order of their first appearance. */
export function groupE2eReferences(rows: readonly (readonly [string, string])[]): E2eInstance[] {
  const byMr = new Map<string, string[]>();
  for (const [mr, ref] of rows) {
    const list = byMr.get(mr);
    if (list) list.push(ref);
    else byMr.set(mr, [ref]);
  }
  return [...byMr].map(([mr, references]) => ({ mr, references }));
}
