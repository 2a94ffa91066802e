import type { CapacitySettings } from "./droplet-server.js";
import type { RateLimiter } from "./ratelimit.js";

/** Which /v2 requests a counted fault applies to: every one, or those on a path prefix and method. */
export interface RequestFilter {
  /** Only requests whose path starts with this (e.g. "/v2/droplets", "/v2/reserved_ips"). */
  path?: string;
  /** Only requests with this method (GET, POST, DELETE ...). */
  method?: string;
}

/** The next `count` matching /v2 requests are answered with `status`. */
export interface FailNext extends RequestFilter {
  status: number;
  count: number;
  /** A 429's ratelimit-reset (and retry-after) this far ahead; 1 s when not given. */
  resetInMs?: number;
  /** A 429 without retry-after: the hourly limit, which only says ratelimit-reset. */
  noRetryAfter?: boolean;
}

/** The next `count` matching /v2 requests get their connection reset, with no answer. */
export interface ResetNext extends RequestFilter {
  count: number;
  /**
   * The request takes effect first (a create creates its droplets, a delete destroys), then the
   * connection is reset: the client cannot know what happened. Without it, nothing is done.
   */
  resetAfterCreate?: boolean;
}

/** Failures on demand, set by flags at start and changed at run time through POST /_sim/faults. */
export interface Faults {
  /** Share (0..1) of /v2 requests answered with a 5xx. */
  failRate: number;
  /** Extra delay before every /v2 answer, ms. */
  slowMs: number;
  /** The next N droplets created never become active. */
  neverBoot: number;
  /** The next `count` matching /v2 requests are answered with `status` (401, 422, 429, 500, 503 ...). */
  failNext: FailNext | null;
  /** A new droplet is missing from lists and 404 by id for this long (ms). */
  listLagMs: number;
  /** A destroyed droplet is still listed for this long after its 204 (ms). */
  deleteLagMs: number;
  /** The next N creates make their droplets and then answer 500 (an accepted create that looks failed). */
  acceptThenFail: number;
  /** The next N creates also make, for each name, a droplet of someone else's with the same name. */
  nameCollision: number;
  /** Creates with these sizes are refused as unavailable in the region (422). */
  unavailableSizes: string[];
  /** New droplets serve only on their public address (a VPC the proxy is not in). */
  privateUnreachable: boolean;
  /** The next N droplets created boot and serve, but their health path answers 503 for ever. */
  unhealthy: number;
  /** Droplets created from this image (slug or id; "*": every image) never pass health checks. */
  unhealthyImage: string | null;
  /** POST /v2/droplets is answered this long after its droplets were created (ms). */
  createDelayMs: number;
  /** DELETE /v2/droplets/{id} answers 404 for a droplet younger than this (ms), and leaves it alone. */
  deleteNotFoundYoungMs: number;
  /** The next matching /v2 requests get their connection reset, with no answer. */
  resetNext: ResetNext | null;
  /**
   * List pages shift between requests, as offset paging does when droplets come and go: page p
   * (p > 1) starts `shiftPages × (p − 1)` items later than it should (positive: items are missed;
   * negative: items are repeated). 0: stable pages.
   */
  shiftPages: number;
  /**
   * Droplet actions and reserved-IP assigns answer 422 "Droplet already has a pending event.":
   * true for every one while set, a number for the next N.
   */
  actionPendingConflict: boolean | number;
}

/** A change posted to /_sim/faults: faults, and the simulator's capacity and limits. */
export interface FaultChange extends Partial<Omit<Faults, "shiftPages">> {
  /** true is the same as 1. */
  shiftPages?: number | boolean;
  /** Droplet ids whose health path starts (true) or stops (false) failing. */
  failHealth?: Record<string, boolean>;
  capacity?: number;
  serviceTimeMs?: number;
  bootTimeMs?: number;
  perMinute?: number;
  /** The hourly limit (ratelimit-limit); lower it to bring the account near its limit. */
  perHour?: number;
  /** Counts this many requests in the hourly window now, as another tool on the same token would. */
  hourlyUsed?: number;
}

/** What a fault change reaches besides the faults themselves. */
export interface FaultTargets {
  state: {
    capacity: CapacitySettings;
    bootTimeMs: number;
    listLagMs: number;
    deleteLagMs: number;
    privateUnreachable: boolean;
  };
  limiter: RateLimiter;
  /** Sets whether a droplet's health path fails (nothing when there is no such droplet). */
  failHealth(id: number, failing: boolean): void;
}

export function defaultFaults(): Faults {
  return {
    failRate: 0,
    slowMs: 0,
    neverBoot: 0,
    failNext: null,
    listLagMs: 0,
    deleteLagMs: 0,
    acceptThenFail: 0,
    unavailableSizes: [],
    privateUnreachable: false,
    nameCollision: 0,
    unhealthy: 0,
    unhealthyImage: null,
    createDelayMs: 0,
    deleteNotFoundYoungMs: 0,
    resetNext: null,
    shiftPages: 0,
    actionPendingConflict: false,
  };
}

const MESSAGES: Record<number, string> = {
  401: "Unable to authenticate you.",
  422: "The request was invalid.",
  429: "API Rate limit exceeded.",
};

export const PENDING_EVENT = "Droplet already has a pending event.";

/** An injected failure: the status, its message, and the headers that go with it. */
export interface InjectedFailure {
  status: number;
  message: string;
  headers: Record<string, string>;
}

/**
 * The simulator's fault injector: holds the faults, decides which request or droplet each one
 * hits (counting down the counted ones), and applies the changes posted to /_sim/faults.
 */
export class FaultInjector {
  readonly faults: Faults;

  constructor(initial: Partial<Faults> = {}) {
    this.faults = { ...defaultFaults(), ...initial };
    if (typeof (initial as FaultChange).shiftPages === "boolean")
      this.faults.shiftPages = (initial as FaultChange).shiftPages ? 1 : 0;
  }

  /** An injected answer for this request (failNext, then failRate), or undefined. */
  takeFailure(method: string, path: string): InjectedFailure | undefined {
    const next = this.faults.failNext;
    if (next && next.count > 0 && matches(next, method, path)) {
      next.count--;
      if (next.count <= 0) this.faults.failNext = null;
      const headers: Record<string, string> = {};
      if (next.status === 429) {
        // An injected 429 says when the limit resets, as the real one does; only the burst
        // limit also says retry-after.
        const resetInMs = next.resetInMs ?? 1000;
        headers["ratelimit-remaining"] = "0";
        headers["ratelimit-reset"] = String(Math.ceil((Date.now() + resetInMs) / 1000));
        if (!next.noRetryAfter) headers["retry-after"] = String(Math.max(1, Math.ceil(resetInMs / 1000)));
      }
      return {
        status: next.status,
        message: MESSAGES[next.status] ?? "Server was unable to give you a response.",
        headers,
      };
    }
    if (this.faults.failRate > 0 && Math.random() < this.faults.failRate) {
      return {
        status: Math.random() < 0.5 ? 500 : 503,
        message: "Server was unable to give you a response.",
        headers: {},
      };
    }
    return undefined;
  }

  /** Whether this request's connection is reset: undefined (no), or whether it takes effect first. */
  takeReset(method: string, path: string): { afterEffect: boolean } | undefined {
    const next = this.faults.resetNext;
    if (!next || next.count <= 0 || !matches(next, method, path)) return undefined;
    next.count--;
    if (next.count <= 0) this.faults.resetNext = null;
    return { afterEffect: next.resetAfterCreate === true };
  }

  /** For one droplet being created: whether it never boots, and whether it never passes health checks. */
  takeDropletFaults(image: string | number, imageSlug: string | undefined, imageId: number | undefined) {
    const neverBoots = this.faults.neverBoot > 0;
    if (neverBoots) this.faults.neverBoot--;
    let unhealthy = false;
    if (this.faults.unhealthy > 0) {
      this.faults.unhealthy--;
      unhealthy = true;
    }
    const bad = this.faults.unhealthyImage;
    if (bad !== null && (bad === "*" || [String(image), imageSlug, String(imageId)].includes(bad)))
      unhealthy = true;
    return { neverBoots, unhealthy };
  }

  /** Takes one of a counted create fault (acceptThenFail, nameCollision). */
  take(name: "acceptThenFail" | "nameCollision"): boolean {
    if (this.faults[name] <= 0) return false;
    this.faults[name]--;
    return true;
  }

  /** Whether this droplet action or reserved-IP assign is refused with a pending event. */
  takePendingConflict(): boolean {
    const conflict = this.faults.actionPendingConflict;
    if (conflict === true) return true;
    if (typeof conflict === "number" && conflict > 0) {
      this.faults.actionPendingConflict = conflict - 1 > 0 ? conflict - 1 : false;
      return true;
    }
    return false;
  }

  /** How many items later than it should page `page` starts. */
  pageShift(page: number): number {
    return page > 1 ? this.faults.shiftPages * (page - 1) : 0;
  }

  /** Applies a change posted to /_sim/faults; throws an Error naming a bad value. */
  apply(change: FaultChange, targets: FaultTargets): void {
    check(change);
    const f = this.faults;
    if (change.failRate !== undefined) f.failRate = change.failRate;
    if (change.slowMs !== undefined) f.slowMs = change.slowMs;
    if (change.neverBoot !== undefined) f.neverBoot = change.neverBoot;
    if (change.failNext !== undefined) f.failNext = change.failNext;
    if (change.acceptThenFail !== undefined) f.acceptThenFail = change.acceptThenFail;
    if (change.unavailableSizes !== undefined) f.unavailableSizes = change.unavailableSizes;
    if (change.nameCollision !== undefined) f.nameCollision = change.nameCollision;
    if (change.unhealthy !== undefined) f.unhealthy = change.unhealthy;
    if (change.unhealthyImage !== undefined) f.unhealthyImage = change.unhealthyImage;
    if (change.createDelayMs !== undefined) f.createDelayMs = change.createDelayMs;
    if (change.deleteNotFoundYoungMs !== undefined) f.deleteNotFoundYoungMs = change.deleteNotFoundYoungMs;
    if (change.resetNext !== undefined) f.resetNext = change.resetNext;
    if (change.shiftPages !== undefined)
      f.shiftPages = typeof change.shiftPages === "boolean" ? (change.shiftPages ? 1 : 0) : change.shiftPages;
    if (change.actionPendingConflict !== undefined) f.actionPendingConflict = change.actionPendingConflict;
    const state = targets.state;
    if (change.privateUnreachable !== undefined)
      f.privateUnreachable = state.privateUnreachable = change.privateUnreachable;
    if (change.listLagMs !== undefined) f.listLagMs = state.listLagMs = change.listLagMs;
    if (change.deleteLagMs !== undefined) f.deleteLagMs = state.deleteLagMs = change.deleteLagMs;
    if (change.capacity !== undefined) state.capacity.capacity = change.capacity;
    if (change.serviceTimeMs !== undefined) state.capacity.serviceTimeMs = change.serviceTimeMs;
    if (change.bootTimeMs !== undefined) state.bootTimeMs = change.bootTimeMs;
    if (change.perMinute !== undefined) targets.limiter.perMinute = change.perMinute;
    if (change.perHour !== undefined) targets.limiter.perHour = change.perHour;
    if (change.hourlyUsed !== undefined) targets.limiter.count(change.hourlyUsed);
    for (const [id, failing] of Object.entries(change.failHealth ?? {}))
      targets.failHealth(Number(id), failing);
  }
}

function matches(filter: RequestFilter, method: string, path: string): boolean {
  return (
    (filter.path === undefined || path.startsWith(filter.path)) &&
    (filter.method === undefined || filter.method.toUpperCase() === method.toUpperCase())
  );
}

/** Refuses a change whose values the simulator could not act on (so a test's typo is loud). */
function check(change: FaultChange): void {
  const counts = [
    "neverBoot",
    "acceptThenFail",
    "nameCollision",
    "unhealthy",
    "createDelayMs",
    "deleteNotFoundYoungMs",
    "slowMs",
    "listLagMs",
    "deleteLagMs",
    "hourlyUsed",
  ] as const;
  for (const key of counts) {
    const value = change[key];
    if (value !== undefined && !(Number.isFinite(value) && value >= 0))
      throw new Error(`${key}: expected a number of at least 0`);
  }
  for (const key of ["perMinute", "perHour"] as const) {
    const value = change[key];
    if (value !== undefined && !(Number.isInteger(value) && value >= 1))
      throw new Error(`${key}: expected a whole number of at least 1`);
  }
  for (const key of ["failNext", "resetNext"] as const) {
    const rule = change[key];
    if (rule === undefined || rule === null) continue;
    if (!(Number.isInteger(rule.count) && rule.count >= 0))
      throw new Error(`${key}.count: expected a whole number of at least 0`);
    if (rule.path !== undefined && typeof rule.path !== "string")
      throw new Error(`${key}.path: expected a path prefix such as "/v2/droplets"`);
    if (rule.method !== undefined && typeof rule.method !== "string")
      throw new Error(`${key}.method: expected a method such as "POST"`);
  }
  if (change.failNext && !(Number.isInteger(change.failNext.status) && change.failNext.status >= 400))
    throw new Error("failNext.status: expected an HTTP error status such as 429 or 503");
  if (
    change.unhealthyImage !== undefined &&
    change.unhealthyImage !== null &&
    typeof change.unhealthyImage !== "string"
  )
    throw new Error("unhealthyImage: expected an image slug or id as a string, or null");
  if (
    change.shiftPages !== undefined &&
    typeof change.shiftPages !== "boolean" &&
    !Number.isInteger(change.shiftPages)
  )
    throw new Error("shiftPages: expected true, false or a whole number");
  const conflict = change.actionPendingConflict;
  if (
    conflict !== undefined &&
    typeof conflict !== "boolean" &&
    !(Number.isInteger(conflict) && conflict >= 0)
  )
    throw new Error("actionPendingConflict: expected true, false or a count");
}
