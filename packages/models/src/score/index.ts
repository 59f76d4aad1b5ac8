export {
  candidateLogprobs,
  type LoglikelihoodRequest,
  type LoglikelihoodResult,
  loglikelihood,
  loglikelihoodTokens,
  nextTokenLogprobs,
  positionLogits,
  positionLogprobs,
  type ScoreOptions,
  type TextScoreOptions,
  type TokenRequest,
} from './score.js';
