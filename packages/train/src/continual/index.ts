export {
  type ContinualOptions,
  type ContinualResult,
  type ContinualTask,
  type StageOptions,
  type StageResult,
  trainContinual,
} from './continual.js';
export { type ForgettingTable, forgettingTable, formatForgettingTable, type TaskScore } from './table.js';
