export {
  type CurvePoint,
  exactMatch,
  QUICKSTART_METHODS,
  type QuickstartEvent,
  type QuickstartOptions,
  type QuickstartPhase,
  type QuickstartResult,
  type QuickstartRow,
  type QuickstartRun,
  runQuickstart,
  type TaskData,
  taskData,
} from './quickstart.js';
export { formatQuickstartTable, lossChart, METHOD_LABELS, renderReport } from './report.js';
export {
  COPY_TASK,
  DIGITS,
  type DigitExample,
  type DigitTask,
  digitExample,
  digitRecords,
  heldOutDigits,
  randomDigits,
  SHIFT_TASK,
} from './tasks.js';
