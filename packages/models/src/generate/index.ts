export { type BeamSearchOptions, type BeamSearchResult, beamSearch } from './beam-search.js';
export { type GenerationDefaults, readGenerationConfig } from './config.js';
export {
  type FinishReason,
  type GenerateOptions,
  type GenerateTokensOptions,
  type Generation,
  generate,
  generateTokens,
  type TokenGeneration,
} from './generate.js';
export {
  argmax,
  checkSampling,
  type SamplingOptions,
  sampleToken,
  samplingDistribution,
  type TokenDistribution,
} from './sampling.js';
