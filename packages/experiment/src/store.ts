/**
 * An experiment's output folder: `cells/<id>/` per cell (its `cell.json` record and the runs'
 * outputs), `models/<name>/` for models the file builds, `report/` for the tables. Records are
 * written atomically (writeFileAtomic), so a killed run leaves either
 * the previous record or the new one, never half of one.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '@sharelora/core/node';
import type { Cell } from './cells.js';
import type { CellRecord } from './record.js';

/** A cell record's file name in its folder. */
export const CELL_RECORD_FILE = 'cell.json';

/** A cell's folder: `OUTPUT/cells/<id>`. */
export const cellDir = (output: string, cell: Pick<Cell, 'id'>): string => join(output, 'cells', cell.id);
/** A built model's folder: `OUTPUT/models/<name>`. */
export const modelDir = (output: string, name: string): string => join(output, 'models', name);
/** The report's folder: `OUTPUT/report`. */
export const reportDir = (output: string): string => join(output, 'report');

/** Writes `value` as indented JSON, atomically. */
export async function writeJsonAtomic(file: string, value: unknown): Promise<void> {
  await writeFileAtomic(file, `${JSON.stringify(value, null, 2)}\n`);
}

/** A cell's record, or undefined when the cell has not started (or its record is unreadable). */
export async function readCellRecord(
  output: string,
  cell: Pick<Cell, 'id'>,
): Promise<CellRecord | undefined> {
  try {
    return JSON.parse(await readFile(join(cellDir(output, cell), CELL_RECORD_FILE), 'utf8')) as CellRecord;
  } catch {
    return undefined;
  }
}

/** Replaces a cell's record atomically. */
export async function writeCellRecord(output: string, record: CellRecord): Promise<void> {
  await writeJsonAtomic(join(cellDir(output, record), CELL_RECORD_FILE), record);
}

/** The records of `cells` that exist, by cell id. */
export async function readCellRecords(
  output: string,
  cells: readonly Cell[],
): Promise<Map<string, CellRecord>> {
  const entries = await Promise.all(cells.map(async (c) => [c.id, await readCellRecord(output, c)] as const));
  return new Map(entries.filter((e): e is readonly [string, CellRecord] => e[1] !== undefined));
}

/**
 * The training-loss curve of a train output folder (its metrics.jsonl): one point per step, the
 * last line of a step winning (a resumed run logs again the steps after its checkpoint).
 */
export async function readTrainCurve(trainDir: string): Promise<Array<{ step: number; loss: number }>> {
  let text: string;
  try {
    text = await readFile(join(trainDir, 'metrics.jsonl'), 'utf8');
  } catch {
    return [];
  }
  const byStep = new Map<number, number>();
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      const m = JSON.parse(line) as { type?: string; step?: number; loss?: number };
      if (m.type === 'step' && typeof m.step === 'number' && typeof m.loss === 'number')
        byStep.set(m.step, m.loss);
    } catch {
      // A line cut short by a kill: the resumed run logs that step again.
    }
  }
  return [...byStep].sort(([a], [b]) => a - b).map(([step, loss]) => ({ step, loss }));
}
