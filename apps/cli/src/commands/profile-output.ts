/** How bench commands hand a profile to the user: without its trace in --json, the trace in a file. */
import { writeFile } from 'node:fs/promises';
import * as core from '@sharelora/core/node';

/** The report for a JSON document: the trace goes to --profile-out, not into stdout. */
export function profileJson(report: core.ProfileReport): Omit<core.ProfileReport, 'trace'> {
  const { trace: _trace, ...rest } = report;
  return rest;
}

/** Writes the Chrome trace when --profile-out was given. */
export async function saveTrace(file: string | undefined, report: core.ProfileReport): Promise<void> {
  if (file) await writeFile(file, JSON.stringify(core.chromeTrace(report)));
}
