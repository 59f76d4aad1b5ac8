import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  buildReport,
  cellDir,
  readCellRecords,
  readTrainCurve,
  reportCsv,
  reportDir,
  reportHtml,
  reportMarkdown,
  writeJsonAtomic,
} from '@sharelora/experiment';
import { parseFlags } from '../args.js';
import { UsageError } from '../cli-error.js';
import { loadExperiment } from './experiment-file.js';
import { experimentHelp } from './experiment-help.js';
import { experimentRun } from './experiment-run.js';
import { experimentSubmit } from './experiment-submit.js';

export { experimentHelp };

async function report(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags(
    'experiment report',
    argv,
    { json: { type: 'boolean' } },
    { allowPositionals: true },
  );
  if (values.help) {
    console.log(experimentHelp);
    return 0;
  }
  const l = await loadExperiment(positionals, 'report');
  const records = await readCellRecords(l.output, l.cells);
  const curves = new Map(
    await Promise.all(
      [...records.values()]
        .filter((rec) => rec.status === 'complete')
        .map(async (rec) => [rec.id, await readTrainCurve(join(cellDir(l.output, rec), 'train'))] as const),
    ),
  );
  const r = buildReport(l.exp.name, l.cells, records, curves);
  const dir = reportDir(l.output);
  const md = reportMarkdown(r);
  await writeJsonAtomic(join(dir, 'report.json'), r);
  await writeFile(join(dir, 'report.md'), md);
  await writeFile(join(dir, 'report.csv'), reportCsv(r));
  await writeFile(join(dir, 'report.html'), await reportHtml(r));
  if (values.json) console.log(JSON.stringify(r, null, 2));
  else {
    process.stdout.write(md);
    console.error(`wrote ${join(dir, 'report.md')}, report.csv, report.json and report.html`);
  }
  return 0;
}

export async function experiment(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === 'run') return experimentRun(rest);
  if (sub === 'submit') return experimentSubmit(rest);
  if (sub === 'report') return report(rest);
  if (sub === undefined || sub === '--help' || sub === '-h') {
    console.log(experimentHelp);
    return sub ? 0 : 2;
  }
  throw new UsageError(`sharelora experiment: unknown subcommand "${sub}" (run, submit, report)`);
}
