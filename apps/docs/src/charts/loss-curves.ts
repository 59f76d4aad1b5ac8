/** Training-loss curves, one line per run, drawn with Observable Plot (playground, live). */
import * as Plot from '@observablehq/plot';

export interface LossSeries {
  name: string;
  losses: readonly number[];
}

/** An SVG figure of each series' loss by step; `steps` fixes the x domain so a live curve does not rescale. */
export function lossCurves(series: readonly LossSeries[], opts: { steps?: number; width?: number } = {}) {
  const points = series.flatMap((s) => s.losses.map((loss, i) => ({ run: s.name, step: i + 1, loss })));
  return Plot.plot({
    width: opts.width ?? 640,
    height: 280,
    marginLeft: 50,
    x: { label: 'step', domain: opts.steps ? [1, opts.steps] : undefined, grid: true },
    y: { label: 'training loss', type: 'log', grid: true },
    color: { legend: true, domain: series.map((s) => s.name) },
    marks: [Plot.line(points, { x: 'step', y: 'loss', stroke: 'run', tip: true })],
  });
}
