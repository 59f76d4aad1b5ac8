export {
  type CurvePoint,
  QUICKSTART_METHODS,
  type QuickstartEvent,
  type QuickstartOptions,
  type QuickstartPhase,
  type QuickstartResult,
  type QuickstartRow,
  type QuickstartRun,
  runQuickstart,
} from './quickstart.js';
export { formatBytes, formatQuickstartTable, lossChart, METHOD_LABELS, renderReport } from './report.js';
