import { Linear, type Module } from '@sharelora/core';

/**
 * Bytes the model's frozen weights take on the device, by storage format ('f32', 'bf16', 'f16',
 * 'nf4', 'fp4', 'int8'): quantized layers count their codes and scales, other frozen parameters
 * their values. Trainable parameters (adapters, a fully fine-tuned model) are not base weights and
 * are left out.
 */
export function weightBytesByFormat(model: Module): Record<string, number> {
  const out: Record<string, number> = {};
  const add = (format: string, bytes: number) => {
    out[format] = (out[format] ?? 0) + bytes;
  };
  for (const [, m] of model.namedModules())
    if (m instanceof Linear && m.quantized) add(m.quantized.format, m.quantized.bytes);
  for (const p of model.parameters()) if (!p.trainable && !p.packed) add(p.value.dtype, p.value.bytes);
  return out;
}
