/** Classification and correlation metrics used by GLUE (same definitions as scikit-learn / SciPy). */

function checkPair(a: readonly number[], b: readonly number[], what: string): void {
  if (a.length !== b.length) throw new RangeError(`${what}: ${a.length} predictions for ${b.length} labels`);
  if (a.length === 0) throw new RangeError(`${what}: no examples`);
}

/**
 * Fraction of predictions equal to their label, in [0, 1]. Throws a RangeError when the lengths
 * differ or there are no examples.
 */
export function accuracy(predictions: readonly number[], labels: readonly number[]): number {
  checkPair(predictions, labels, 'accuracy');
  let hit = 0;
  for (let i = 0; i < labels.length; i++) if (predictions[i] === labels[i]) hit++;
  return hit / labels.length;
}

/** Binary F1 of the `positive` class (default 1); 0 when there are no true or predicted positives. */
export function f1Score(predictions: readonly number[], labels: readonly number[], positive = 1): number {
  checkPair(predictions, labels, 'f1');
  let tp = 0;
  let fp = 0;
  let fn = 0;
  for (let i = 0; i < labels.length; i++) {
    const p = predictions[i] === positive;
    const t = labels[i] === positive;
    if (p && t) tp++;
    else if (p) fp++;
    else if (t) fn++;
  }
  return tp === 0 ? 0 : (2 * tp) / (2 * tp + fp + fn);
}

/**
 * Matthews correlation coefficient, in the multiclass form (Gorodkin's R_K) that reduces to the
 * binary (TP·TN − FP·FN)/√(…); 0 when a marginal is constant.
 */
export function matthewsCorrelation(predictions: readonly number[], labels: readonly number[]): number {
  checkPair(predictions, labels, 'matthews');
  const truth = new Map<number, number>();
  const pred = new Map<number, number>();
  let correct = 0;
  for (let i = 0; i < labels.length; i++) {
    truth.set(labels[i], (truth.get(labels[i]) ?? 0) + 1);
    pred.set(predictions[i], (pred.get(predictions[i]) ?? 0) + 1);
    if (predictions[i] === labels[i]) correct++;
  }
  const s = labels.length;
  let tp = 0;
  for (const [k, t] of truth) tp += t * (pred.get(k) ?? 0);
  let pp = 0;
  for (const p of pred.values()) pp += p * p;
  let tt = 0;
  for (const t of truth.values()) tt += t * t;
  const denom = Math.sqrt((s * s - pp) * (s * s - tt));
  return denom === 0 ? 0 : (correct * s - tp) / denom;
}

/** Pearson's r; NaN when either input is constant (as SciPy). */
export function pearson(x: readonly number[], y: readonly number[]): number {
  checkPair(x, y, 'pearson');
  const n = x.length;
  let mx = 0;
  let my = 0;
  for (let i = 0; i < n; i++) {
    mx += x[i];
    my += y[i];
  }
  mx /= n;
  my /= n;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    const dx = x[i] - mx;
    const dy = y[i] - my;
    sxy += dx * dy;
    sxx += dx * dx;
    syy += dy * dy;
  }
  if (sxx === 0 || syy === 0) return Number.NaN;
  return Math.max(-1, Math.min(1, sxy / Math.sqrt(sxx * syy)));
}

/** 1-based ranks, ties sharing the average of the ranks they span. */
export function averageRanks(values: readonly number[]): number[] {
  const order = values.map((v, i) => [v, i] as const).sort((a, b) => a[0] - b[0]);
  const ranks = new Array<number>(values.length);
  let i = 0;
  while (i < order.length) {
    let j = i;
    while (j + 1 < order.length && order[j + 1][0] === order[i][0]) j++;
    const rank = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) ranks[order[k][1]] = rank;
    i = j + 1;
  }
  return ranks;
}

/** Spearman's ρ: Pearson's r of the average ranks. */
export function spearman(x: readonly number[], y: readonly number[]): number {
  checkPair(x, y, 'spearman');
  return pearson(averageRanks(x), averageRanks(y));
}
