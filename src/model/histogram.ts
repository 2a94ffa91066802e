/**
 * Round-trip time histogram with fixed geometric buckets: bucket i holds values up to
 * BOUNDS[i] ms, each bound 25% above the previous one, from 0.1 ms to past 10 minutes. Fixed
 * bounds make histograms from different backends and intervals mergeable by adding counts, and
 * keep percentile error under the bucket width (interpolation inside a bucket narrows it further).
 */
const FIRST_BOUND_MS = 0.1;
const GROWTH = 1.25;
export const BUCKET_COUNT = 72;
export const BOUNDS: readonly number[] = Array.from(
  { length: BUCKET_COUNT },
  (_, i) => FIRST_BOUND_MS * GROWTH ** i,
);
const LOG_GROWTH = Math.log(GROWTH);

export function bucketOf(valueMs: number): number {
  if (valueMs <= FIRST_BOUND_MS) return 0;
  const index = Math.ceil(Math.log(valueMs / FIRST_BOUND_MS) / LOG_GROWTH - 1e-9);
  return index >= BUCKET_COUNT ? BUCKET_COUNT - 1 : index;
}

export function newCounts(): Uint32Array {
  return new Uint32Array(BUCKET_COUNT);
}

export function addInto(target: Uint32Array, source: ArrayLike<number>): void {
  for (let i = 0; i < BUCKET_COUNT; i++) target[i] = (target[i] as number) + ((source[i] as number) ?? 0);
}

/** The q-quantile (0..1) in ms, interpolated linearly inside its bucket; undefined when empty. */
export function quantile(counts: ArrayLike<number>, q: number): number | undefined {
  let total = 0;
  for (let i = 0; i < BUCKET_COUNT; i++) total += counts[i] as number;
  if (total === 0) return undefined;
  const rank = q * total;
  let seen = 0;
  for (let i = 0; i < BUCKET_COUNT; i++) {
    const inBucket = counts[i] as number;
    if (inBucket === 0) continue;
    if (seen + inBucket >= rank) {
      const lower = i === 0 ? 0 : (BOUNDS[i - 1] as number);
      const upper = BOUNDS[i] as number;
      const within = inBucket === 0 ? 1 : (rank - seen) / inBucket;
      return lower + (upper - lower) * Math.min(1, Math.max(0, within));
    }
    seen += inBucket;
  }
  return BOUNDS[BUCKET_COUNT - 1];
}

/** Compact text form for the inventory: "bucket:count" pairs for non-empty buckets. */
export function encodeCounts(counts: ArrayLike<number>): string {
  const parts: string[] = [];
  for (let i = 0; i < BUCKET_COUNT; i++) if (counts[i]) parts.push(`${i}:${counts[i]}`);
  return parts.join(",");
}

export function decodeInto(target: Uint32Array, text: string): void {
  if (!text) return;
  for (const part of text.split(",")) {
    const colon = part.indexOf(":");
    const index = Number(part.slice(0, colon));
    if (index >= 0 && index < BUCKET_COUNT)
      target[index] = (target[index] as number) + Number(part.slice(colon + 1));
  }
}
