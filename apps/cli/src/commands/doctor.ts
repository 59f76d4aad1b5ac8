import { formatBytes } from '@sharelora/core';
import { init, matmulPath, selfCheck, shutdown } from '@sharelora/core/node';
import { parseFlags } from '../args.js';

/** Limits measured in bytes (the others are counts and dimensions), shown in binary units. */
const BYTE_LIMITS = new Set([
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeWorkgroupStorageSize',
  'minStorageBufferOffsetAlignment',
]);

/** What each matmul path means, for the doctor's report. */
const MATMUL_PATHS: Record<ReturnType<typeof matmulPath>, string> = {
  textures: 'large products pack both operands into storage textures (CPU adapter)',
  subgroups: 'tiles share operand panels by subgroup broadcast',
  portable: 'per-lane loads (no subgroups on this adapter)',
};

export const doctorHelp = `Usage: sharelora doctor [--json]

Reports the WebGPU adapter (name, backend, limits in binary units, features; raw bytes with --json) and runs a kernel self-check of the main
ops (matmul, broadcasting add, gelu, softmax, layer norm, autograd) against a float64 CPU computation
on this adapter. Exit code 1 when a kernel disagrees with the CPU.

Options:
  --json      print one JSON document on stdout
  -h, --help  show this help`;

export async function doctor(argv: string[]): Promise<number> {
  const { values } = parseFlags('doctor', argv, { json: { type: 'boolean' } });
  if (values.help) {
    console.log(doctorHelp);
    return 0;
  }
  const device = await init();
  try {
    const checks = await selfCheck();
    const ok = checks.every((c) => c.ok);
    const kernels = { matmul: matmulPath() };
    const report = { ok, adapter: device.info, kernels, checks };
    if (values.json) {
      console.log(JSON.stringify(report, null, 2));
    } else {
      const i = device.info;
      console.log(
        `adapter      ${i.description || i.device || '(unnamed)'} — vendor ${i.vendor || '?'}, architecture ${i.architecture || '?'}${i.isSoftware ? ' (software)' : ''}`,
      );
      console.log(
        `features     ${i.features.join(', ') || '(none of shader-f16, subgroups, timestamp-query)'}`,
      );
      for (const [k, v] of Object.entries(i.limits))
        console.log(`limit        ${k.padEnd(34)} ${BYTE_LIMITS.has(k) ? formatBytes(v) : v}`);
      console.log(`matmul       ${MATMUL_PATHS[kernels.matmul]}`);
      for (const c of checks)
        console.log(
          `self-check   ${c.op.padEnd(24)} rel.err ${c.relError.toExponential(2)}  ${c.ok ? 'ok' : 'FAIL'}`,
        );
      console.log(
        ok ? 'WebGPU is working.' : 'Some kernels disagree with the CPU reference on this adapter.',
      );
    }
    return ok ? 0 : 1;
  } finally {
    shutdown();
  }
}
