/** The CPU's model name and widest x86 vector ISA, which every benchmark figure names. */
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';

export function cpuInfo() {
  const text = readFileSync('/proc/cpuinfo', 'utf8');
  const flags = text.match(/^flags\s*:(.*)$/m)?.[1].split(/\s+/) ?? [];
  const isa = flags.includes('avx512f') ? 'AVX-512' : flags.includes('avx2') ? 'AVX2' : 'no AVX2';
  const cpu = text.match(/^model name\s*:\s*(.*)$/m)?.[1] ?? '?';
  return { cpu, isa, cores: cpus().length };
}
