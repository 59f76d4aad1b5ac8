/**
 * @sharelora/experiment: experiment grids as data. Parse an experiment file, expand it into cells
 * with stable ids, and turn the cells' records into paper-style tables. Running the cells is the
 * CLI's `sharelora experiment run`.
 */
export {
  type Cell,
  type CellSettings,
  canonicalJson,
  cellId,
  expandCells,
  selectCells,
  trainOptions,
} from './cells.js';
export { reportHtml } from './html.js';
export {
  type CellRecord,
  type CellStatus,
  numericLeaves,
  type TrainFigures,
  trainFigures,
} from './record.js';
export {
  buildReport,
  type ExperimentReport,
  type ReportCurve,
  type ReportRow,
  reportCsv,
  reportMarkdown,
  type Stat,
  stat,
} from './report.js';
export {
  dnsLabel,
  type IndexedJobOptions,
  k8sIndexedJob,
  k8sIndexedJobYaml,
  type SlurmOptions,
  shellQuote,
  slurmArray,
  slurmScript,
} from './schedulers.js';
export {
  type DatasetSpec,
  type EvaluationSpec,
  type Experiment,
  ExperimentError,
  experimentSchema,
  type MethodSpec,
  type ModelRecipe,
  parseExperiment,
  type TrainingSpec,
} from './schema.js';
export {
  CELL_RECORD_FILE,
  cellDir,
  modelDir,
  readCellRecord,
  readCellRecords,
  readTrainCurve,
  reportDir,
  writeCellRecord,
  writeJsonAtomic,
} from './store.js';
