export {
  LOCK_FILE,
  type LockHolder,
  lockOutputDir,
  lockOutputFile,
  OutputLock,
  OutputLockedError,
  withOutputDirLock,
} from './lock.js';
export {
  checkOutputPath,
  type OutputInput,
  type OutputPathOptions,
  UnsafeOutputError,
} from './output-path.js';
