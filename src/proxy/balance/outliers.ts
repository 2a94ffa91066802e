import type { Config } from "../../config/config.js";
import type { BackendCode } from "../../model/reason-codes.js";
import type { OutlierState } from "./backend.js";

/**
 * Passive outlier detection (Envoy's outlier detection, HAProxy's observe layer7): a backend whose
 * answers are 5xx, or whose connections fail, `eject-after` times in a row is taken out of
 * rotation for a while even though its health path still passes. Pure functions of the backend's
 * outlier state, the settings and the time, so the rules are tested with tables.
 */
/** [health] eject-after and its companions (eject-after 0 = outlier ejection is off). */
export type EjectionSettings = Pick<
  Config["health"],
  "ejectAfter" | "ejectTimeMs" | "maxEjectTimeMs" | "maxEjectedPercent"
>;

/** Why a backend was ejected or returned, as the event's reason code and the metric's label. */
/** The ejection codes of BACKEND_CODES (model/reason-codes.ts). */
export type OutlierCode = Extract<BackendCode, "outlier-5xx" | "outlier-connect" | "outlier-trial-failed">;

/**
 * How long the `ejections`-th ejection of a run lasts: `eject-time`, doubling each time, at most
 * `max-eject-time`.
 */
export function ejectionDuration(ejections: number, settings: EjectionSettings): number {
  const doubled = settings.ejectTimeMs * 2 ** Math.max(0, Math.min(30, ejections - 1));
  return Math.min(doubled, settings.maxEjectTimeMs);
}

/**
 * Whether one more backend may be ejected: at most `max-ejected-percent` of the backends in the
 * active state (in rotation or ejected) are ever ejected at once, and never the last one in
 * rotation, whatever the percentage says.
 */
export function mayEject(activeBackends: number, ejectedNow: number, maxEjectedPercent: number): boolean {
  const allowed = Math.floor((activeBackends * maxEjectedPercent) / 100);
  return ejectedNow + 1 <= allowed && activeBackends - ejectedNow - 1 >= 1;
}

export type AnswerVerdict =
  /** Nothing changes. */
  | { kind: "none" }
  /** Eject now for `durationMs` (the cap may still refuse it). */
  | { kind: "eject"; code: OutlierCode; durationMs: number }
  /** The trial request was answered well: back in rotation for good. */
  | { kind: "returned" };

/**
 * Applies one answer (or connect failure) to a backend's outlier state and says what follows.
 * `failed` is a 5xx answer or a failed connection. Mutates `state`'s counters only; ejecting is
 * left to the caller, which knows how many others are ejected.
 */
export function judgeAnswer(
  state: OutlierState,
  failed: boolean,
  cause: "5xx" | "connect",
  settings: EjectionSettings,
  now: number,
): AnswerVerdict {
  if (settings.ejectAfter <= 0) {
    state.consecutiveErrors = 0;
    return { kind: "none" };
  }
  if (!failed) {
    state.consecutiveErrors = 0;
    if (state.onTrial) return { kind: "returned" };
    return { kind: "none" };
  }
  state.consecutiveErrors++;
  if (state.ejectedUntil !== undefined) return { kind: "none" }; // already out
  if (state.onTrial)
    return { kind: "eject", code: "outlier-trial-failed", durationMs: nextDuration(state, settings, now) };
  if (state.consecutiveErrors < settings.ejectAfter) return { kind: "none" };
  return {
    kind: "eject",
    code: cause === "5xx" ? "outlier-5xx" : "outlier-connect",
    durationMs: nextDuration(state, settings, now),
  };
}

/**
 * The length of the next ejection. The run (and so the doubling) starts over once the backend has
 * stayed in rotation at least as long as its last ejection lasted.
 */
function nextDuration(state: OutlierState, settings: EjectionSettings, now: number): number {
  const ejections = (runSettled(state, settings, now) ? 0 : state.ejections) + 1;
  return ejectionDuration(ejections, settings);
}

function runSettled(state: OutlierState, settings: EjectionSettings, now: number): boolean {
  if (state.returnedAt === undefined || state.onTrial) return false;
  return now - state.returnedAt >= ejectionDuration(state.ejections, settings);
}

/** Records an ejection in the state (the caller checked the cap). */
export function eject(
  state: OutlierState,
  durationMs: number,
  settings: EjectionSettings,
  now: number,
): void {
  if (runSettled(state, settings, now)) state.ejections = 0;
  state.ejectedSince ??= now;
  state.ejections++;
  state.ejectedUntil = now + durationMs;
  state.onTrial = false;
  state.trialInFlight = false;
  state.consecutiveErrors = 0;
}

/** The ejection time is over: the backend may take one trial request. Returns true if it changed. */
export function endEjectionIfDue(state: OutlierState, now: number): boolean {
  if (state.ejectedUntil === undefined || now < state.ejectedUntil) return false;
  state.ejectedUntil = undefined;
  state.onTrial = true;
  state.trialInFlight = false;
  return true;
}

/** The trial was answered well: the backend is back for good and its replace-unhealthy clock stops. */
export function markReturned(state: OutlierState, now: number): void {
  state.onTrial = false;
  state.trialInFlight = false;
  state.ejectedSince = undefined;
  state.returnedAt = now;
}

/** Out of rotation because of outlier detection (ejected, or its trial request is in flight). */
export function isEjected(state: OutlierState): boolean {
  return state.ejectedUntil !== undefined || state.trialInFlight;
}
