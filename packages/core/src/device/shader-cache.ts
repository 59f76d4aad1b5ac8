/**
 * llvmpipe (Mesa 25.0) keeps compiled shaders in a disk cache whose key leaves out
 * LP_NATIVE_VECTOR_WIDTH, the SIMD width it compiles for. A kernel compiled under one width is
 * taken from the cache under another: built for 8-lane subgroups and run after the width was set
 * to 512 bits, its subgroup broadcasts and reductions still span 8 lanes while the device reports
 * subgroups of 16, so attention and decoding compute wrong values and nothing reports an error.
 * So when the width is set and the cache location is Mesa's default, each width gets a cache
 * directory of its own.
 */
import { homedir } from 'node:os';
import { join } from 'node:path';

/**
 * Points MESA_SHADER_CACHE_DIR at a directory for the LP_NATIVE_VECTOR_WIDTH in `env`, unless the
 * width is unset or the user chose a cache directory or turned the cache off. Must run before the
 * driver starts (it reads the variables once). Returns the directory chosen, or null.
 */
export function separateShaderCacheByVectorWidth(env: NodeJS.ProcessEnv = process.env): string | null {
  const width = env.LP_NATIVE_VECTOR_WIDTH?.trim();
  if (!width || env.MESA_SHADER_CACHE_DIR || env.MESA_SHADER_CACHE_DISABLE) return null;
  const root = env.XDG_CACHE_HOME || join(env.HOME || homedir(), '.cache');
  // Mesa creates the directory; the name keeps only the characters of a number.
  const dir = join(root, `mesa_shader_cache_lp${width.replace(/[^0-9]/g, '') || 'other'}`);
  env.MESA_SHADER_CACHE_DIR = dir;
  return dir;
}
