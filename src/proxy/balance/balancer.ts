import type { Config } from "../../config/config.js";
import { connectionsOf, type LiveBackend } from "./backend.js";

/** The strategies [proxy] strategy accepts (declared in src/config/schema.ts). */
export type StrategyName = Config["proxy"]["strategy"];

/**
 * Strategies are pure functions of the candidates (already filtered to those in rotation), a
 * cursor for round-robin fairness, a random source and each candidate's effective weight (its
 * weight, ramped during slow start), so they can be tested with tables.
 */
export interface PickInput {
  candidates: readonly LiveBackend[];
  cursor: number;
  random: () => number;
  /** The weight a candidate has now; defaults to its configured weight. */
  weightOf?: (backend: LiveBackend) => number;
}

const configuredWeight = (backend: LiveBackend): number => backend.weight;

/**
 * Smooth weighted round-robin, as nginx does it: every pick adds each candidate's weight to its
 * running score, takes the highest, and subtracts the total from the winner. Weights 3:1 give
 * A A B A rather than A A A B, and equal weights give plain round-robin in id order.
 */
export function smoothWeighted(
  candidates: readonly LiveBackend[],
  weightOf: (backend: LiveBackend) => number,
): LiveBackend | undefined {
  let best: LiveBackend | undefined;
  let total = 0;
  for (const candidate of candidates) {
    const weight = weightOf(candidate);
    candidate.schedulerScore += weight;
    total += weight;
    if (!best || candidate.schedulerScore > best.schedulerScore) best = candidate;
  }
  if (best) best.schedulerScore -= total;
  return best;
}

/** True when every candidate has the same weight now (the common case: no weights set, no ramp). */
function sameWeights(
  candidates: readonly LiveBackend[],
  weightOf: (backend: LiveBackend) => number,
): boolean {
  const first = candidates[0];
  if (!first) return true;
  const weight = weightOf(first);
  for (const candidate of candidates) if (weightOf(candidate) !== weight) return false;
  return true;
}

/** Round-robin in proportion to weight (smooth weighted round-robin). */
export function roundRobin({ candidates, weightOf = configuredWeight }: PickInput): LiveBackend | undefined {
  if (candidates.length === 0) return undefined;
  return smoothWeighted(candidates, weightOf);
}

/**
 * Fewest connections. With equal weights: the fewest wins, and ties go round-robin from the
 * cursor so equal backends share the load. With different weights, load is divided by weight as
 * Envoy's weighted least-request does it: smooth weighted round-robin over weight ÷ (connections
 * + 1), so idle backends split requests by weight (3:1 stays 3:1) and a loaded one gets fewer.
 */
export function leastConnections({
  candidates,
  cursor,
  weightOf = configuredWeight,
}: PickInput): LiveBackend | undefined {
  const n = candidates.length;
  if (n === 0) return undefined;
  if (!sameWeights(candidates, weightOf))
    return smoothWeighted(candidates, (b) => weightOf(b) / (connectionsOf(b) + 1));
  let best: LiveBackend | undefined;
  for (let k = 0; k < n; k++) {
    const candidate = candidates[(cursor + k) % n] as LiveBackend;
    if (!best || connectionsOf(candidate) < connectionsOf(best)) best = candidate;
  }
  return best;
}

/**
 * Latency-aware. With equal weights: power of two choices, two distinct random candidates, keep
 * the one with the lower expected wait, EWMA round-trip time × (connections + 1); a backend with
 * no measurement yet scores as fast so that it gets measured. With different weights, the
 * expected wait is divided by weight the same way least-connections does: smooth weighted
 * round-robin over weight ÷ expected wait.
 */
export function latency({
  candidates,
  random,
  weightOf = configuredWeight,
}: PickInput): LiveBackend | undefined {
  const n = candidates.length;
  if (n <= 1) return candidates[0];
  if (!sameWeights(candidates, weightOf))
    return smoothWeighted(candidates, (b) => weightOf(b) / latencyScore(b));
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

/** A newly active backend starts at this share of its weight during slow start (Envoy's default). */
export const SLOW_START_MIN_SHARE = 0.1;

/**
 * The weight a backend has now: its configured weight, ramped linearly from 10 % to 100 % over
 * `slowStartMs` after it came into rotation, so a cold droplet is not flooded the moment it
 * passes its health checks.
 */
export function effectiveWeight(backend: LiveBackend, now: number, slowStartMs: number): number {
  if (slowStartMs <= 0) return backend.weight;
  const elapsed = now - backend.activeSince;
  if (elapsed >= slowStartMs) return backend.weight;
  const share = Math.max(SLOW_START_MIN_SHARE, elapsed / slowStartMs);
  return backend.weight * share;
}

const STRATEGIES: Record<StrategyName, (input: PickInput) => LiveBackend | undefined> = {
  "round-robin": roundRobin,
  "least-connections": leastConnections,
  latency,
};

/** Holds the strategy in force (it can change on reload), slow start and the round-robin cursor. */
export class Balancer {
  private cursor = 0;
  slowStartMs = 0;

  constructor(
    public strategy: StrategyName,
    private readonly random: () => number = Math.random,
    private readonly now: () => number = Date.now,
  ) {}

  /** Picks a backend from `candidates`, skipping those in `exclude` (already tried for this request). */
  pick(candidates: readonly LiveBackend[], exclude?: ReadonlySet<number>): LiveBackend | undefined {
    const usable = exclude && exclude.size > 0 ? candidates.filter((b) => !exclude.has(b.id)) : candidates;
    const cursor = this.cursor;
    this.cursor = (this.cursor + 1) % 1_000_000_007;
    return STRATEGIES[this.strategy]({
      candidates: usable,
      cursor,
      random: this.random,
      weightOf: this.weigher(),
    });
  }

  /** Each backend's weight now: configured, or ramped while slow start lasts. */
  weigher(): (backend: LiveBackend) => number {
    const slowStartMs = this.slowStartMs;
    if (slowStartMs <= 0) return configuredWeight;
    const now = this.now();
    return (backend) => effectiveWeight(backend, now, slowStartMs);
  }
}
