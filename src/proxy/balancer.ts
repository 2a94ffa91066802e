import { connectionsOf, type LiveBackend } from "./backend.js";

export type StrategyName = "round-robin" | "least-connections" | "latency";

/**
 * Strategies are pure functions of the candidates (already filtered to those in rotation), a
 * cursor for round-robin fairness and a random source, so they can be tested with tables.
 */
export interface PickInput {
  candidates: readonly LiveBackend[];
  cursor: number;
  random: () => number;
}

export function roundRobin({ candidates, cursor }: PickInput): LiveBackend | undefined {
  if (candidates.length === 0) return undefined;
  return candidates[cursor % candidates.length];
}

/** Fewest connections; ties go round-robin from the cursor so equal backends share the load. */
export function leastConnections({ candidates, cursor }: PickInput): LiveBackend | undefined {
  const n = candidates.length;
  let best: LiveBackend | undefined;
  for (let k = 0; k < n; k++) {
    const candidate = candidates[(cursor + k) % n] as LiveBackend;
    if (!best || connectionsOf(candidate) < connectionsOf(best)) best = candidate;
  }
  return best;
}

/**
 * Latency-aware: power of two choices. Two distinct random candidates, keep the one with the lower
 * expected wait, EWMA round-trip time × (connections + 1). A backend with no measurement yet
 * scores as fast so that it gets measured.
 */
export function latency({ candidates, random }: PickInput): LiveBackend | undefined {
  const n = candidates.length;
  if (n <= 1) return candidates[0];
  const i = Math.floor(random() * n);
  let j = Math.floor(random() * (n - 1));
  if (j >= i) j++;
  const a = candidates[i] as LiveBackend;
  const b = candidates[j] as LiveBackend;
  return latencyScore(a) <= latencyScore(b) ? a : b;
}

export function latencyScore(backend: LiveBackend): number {
  return ((backend.ewmaMs ?? 0) + 1) * (connectionsOf(backend) + 1);
}

const STRATEGIES: Record<StrategyName, (input: PickInput) => LiveBackend | undefined> = {
  "round-robin": roundRobin,
  "least-connections": leastConnections,
  latency,
};

/** Holds the strategy in force (it can change on reload) and the round-robin cursor. */
export class Balancer {
  private cursor = 0;

  constructor(
    public strategy: StrategyName,
    private readonly random: () => number = Math.random,
  ) {}

  /** Picks a backend from `candidates`, skipping those in `exclude` (already tried for this request). */
  pick(candidates: readonly LiveBackend[], exclude?: ReadonlySet<number>): LiveBackend | undefined {
    const usable = exclude && exclude.size > 0 ? candidates.filter((b) => !exclude.has(b.id)) : candidates;
    const cursor = this.cursor;
    this.cursor = (this.cursor + 1) % 1_000_000_007;
    return STRATEGIES[this.strategy]({ candidates: usable, cursor, random: this.random });
  }
}
