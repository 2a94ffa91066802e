import { DestroyRetries } from "../cloud/destroy-retries.js";
import type { DropletLifecycle } from "../cloud/lifecycle.js";
import type { Config } from "../config/load.js";
import { ApiError, FencedError, IdentityConflictError, SpendRefusedError } from "../errors.js";
import type { BackendRow, BackendStore } from "../inventory/backends.js";
import type { Leadership } from "../inventory/leadership.js";
import type { SampleStore } from "../inventory/samples.js";
import type { Logger } from "../log.js";
import { loadOf } from "../proxy/balance/backend.js";
import type { Pool } from "../proxy/balance/pool.js";
import { type ActionBackoff, afterFailure, inBackoff, NO_BACKOFF } from "./backoff.js";
import { dropletViews } from "./droplet-views.js";
import {
  type Decision,
  decide,
  EMPTY_MEMORY,
  type PolicyMemory,
  replacementsHeld,
  resumeReplacements,
  type ScaleInputs,
} from "./policy.js";
import { type HistorySource, PredictionReader } from "./prediction-reader.js";
import { scheduleFloor, startTicker } from "./schedule.js";

/** The event `doproxy autoscale resume` writes; the leader's next tick reads it. */
export const RESUME_EVENT = "autoscale.resume";

export interface ControllerDeps {
  config: () => Config;
  backends: BackendStore;
  samples: SampleStore;
  /** Only the pool's leader scales; every action is fenced by its term. */
  leadership: Leadership;
  pool: Pool;
  lifecycle: DropletLifecycle;
  log: Logger;
  instanceId: string;
  /** Hourly price of one droplet of the configured size, cached by serve; undefined if unknown. */
  hourlyPrice?: () => number | undefined;
  /** Every decision (for metrics). */
  onDecision?: (decision: Decision) => void;
  /** Droplets were ordered (the boot watcher looks sooner). */
  onProvisioned?: () => void;
  /** Long history reads for the predictor's model, off the proxy's event loop. */
  readHistory?: HistorySource;
}

/**
 * The autoscaler inside `serve`: on every node-cron tick, if this process leads the pool, it gathers
 * the inputs, calls the pure `decide()`, records the decision as an event and carries it out
 * through the provider. Failures are events too; the next tick tries again within the rules.
 */
export class AutoscaleController {
  private memory: PolicyMemory = EMPTY_MEMORY;
  private ticker: { stop(): void } | undefined;
  private expression = "";
  private lastHold: string | undefined;
  private lastErrorReason: string | undefined;
  /** Failed creates back off; exposed for /api/status. */
  backoff: ActionBackoff = NO_BACKOFF;
  private leader = false;
  /** The leadership term this tick runs in, checked before every action (see stillLeads). */
  private term: number | undefined;
  lastInputs: ScaleInputs | undefined;
  /** The last destroy error said per backend (events say each once). */
  private readonly destroyErrors = new Map<number, string>();
  /** Backends whose destroy failed: when to try again. */
  private readonly destroyRetries = new DestroyRetries();
  lastDecision: Decision | undefined;

  private readonly predictions: PredictionReader;

  constructor(private readonly deps: ControllerDeps) {
    this.predictions = new PredictionReader(deps.samples, deps.backends.events, deps.readHistory);
  }

  /** Starts, restarts (new expression) or stops the ticker to match the configuration. */
  reconfigure(): void {
    const settings = this.deps.config().autoscale;
    if (!settings.enabled) {
      this.stop();
      return;
    }
    if (this.ticker && this.expression === settings.evaluate) return;
    this.stop();
    this.expression = settings.evaluate;
    this.ticker = startTicker(settings.evaluate, async () => {
      try {
        await this.tick();
      } catch (error) {
        this.deps.log.error({ err: (error as Error).message }, "autoscale tick failed");
      }
    });
    this.deps.log.info(
      { evaluate: settings.evaluate, min: settings.min, max: settings.max, dryRun: settings.dryRun },
      "autoscaler running",
    );
  }

  stop(): void {
    this.ticker?.stop();
    this.ticker = undefined;
    this.leader = false;
  }

  get isLeader(): boolean {
    return this.deps.leadership.isLeader;
  }

  async tick(now = Date.now()): Promise<Decision | undefined> {
    const config = this.deps.config();
    const settings = config.autoscale;
    const { log } = this.deps;
    // The leadership's own renewals (every second) keep the lease; a tick only reads the term.
    this.term = this.deps.leadership.current(now);
    const holds = this.term !== undefined;
    if (holds !== this.leader)
      log.info(
        { leader: holds },
        holds
          ? "this process leads the pool: it scales it"
          : "another doproxy serve leads the pool and scales it",
      );
    this.leader = holds;
    if (!holds) return undefined;

    if (!settings.dryRun) await this.finishDrains(now);
    // Destroys may have taken long: decide only while the lease is still this process's.
    if (!(await this.stillLeads("deciding"))) return undefined;
    await this.resumeIfAsked();
    const inputs = await this.gather(config, now);
    const previous = this.memory;
    let decision = decide(inputs, settings, this.memory);
    if (this.backoff.reason === "droplet-limit" && !inBackoff(this.backoff, now)) {
      // At the droplet limit the API refuses a whole batch that would pass it: try one at a time,
      // so the pool gets every droplet the account still has room for.
      decision = {
        ...decision,
        actions: decision.actions.map((a) =>
          a.kind === "create" ? { ...a, count: Math.min(1, a.count) } : a,
        ),
      };
    }
    if (decision.actions.some((a) => a.kind === "create") && inBackoff(this.backoff, now)) {
      // The last create failed: hold until the backoff passes, with the failure as the reason.
      const limit = this.backoff.reason === "droplet-limit";
      decision = {
        kind: "hold",
        code: limit ? "droplet-limit" : "backoff",
        reason: `${limit ? "at the account's droplet limit" : `the last create failed (${this.backoff.reason})`}: ${decision.reason}; next try in ${Math.ceil((this.backoff.retryAt - now) / 1000)}s`,
        actions: [],
        memory: {
          ...decision.memory,
          lastScaleUp: previous.lastScaleUp,
          lastScaleDown: previous.lastScaleDown,
          replacing: previous.replacing,
          replacementStreak: previous.replacementStreak,
          replacementsSince: previous.replacementsSince,
          lastReplacementAt: previous.lastReplacementAt,
          retiring: previous.retiring,
        },
      };
    }
    this.memory = decision.memory;
    this.lastInputs = inputs;
    this.lastDecision = decision;
    await this.record(decision, inputs, settings.dryRun);
    this.deps.onDecision?.(decision);
    // The pool wants no more droplets: a droplet-limit episode is over.
    if (this.backoff.failures === 0 && !decision.actions.some((a) => a.kind === "create"))
      this.backoff = NO_BACKOFF;
    if (settings.dryRun || decision.actions.length === 0) return decision;
    try {
      if (!(await this.execute(decision, config, now))) {
        // Fenced: the lease went to another process before this one acted. It scales now; this
        // decision did not happen.
        this.memory = previous;
        return decision;
      }
      if (decision.actions.some((a) => a.kind === "create")) {
        // A success ends the backoff; at the droplet limit, creates stay one at a time until the
        // pool needs no more (below).
        this.backoff =
          this.backoff.reason === "droplet-limit" ? { ...NO_BACKOFF, reason: "droplet-limit" } : NO_BACKOFF;
        this.lastErrorReason = undefined;
      }
    } catch (error) {
      if (error instanceof SpendRefusedError) {
        // Another creator (droplets add, a proxy that led a moment ago) filled the room between
        // the decision and the gate's transaction: nothing was created, nothing to back off from.
        this.memory = previous;
        log.info({ decision: decision.kind, err: error.message }, "the spend gate held the create back");
        return decision;
      }
      if (error instanceof FencedError) {
        // The inventory refused the write: another proxy leads now. Not a failure to back off from.
        this.memory = previous;
        log.warn(
          { decision: decision.kind, err: error.message },
          "leadership lost: the decision was not carried out",
        );
        return decision;
      }
      // Forget that this step happened so the next tick tries again (still within the rules).
      this.memory = {
        ...decision.memory,
        lastScaleUp: previous.lastScaleUp,
        lastScaleDown: previous.lastScaleDown,
        replacing: previous.replacing,
        replacementStreak: previous.replacementStreak,
        replacementsSince: previous.replacementsSince,
        lastReplacementAt: previous.lastReplacementAt,
        retiring: previous.retiring,
      };
      const message = (error as Error).message;
      const reason = error instanceof ApiError ? error.reason : "error";
      if (decision.actions.some((a) => a.kind === "create"))
        this.backoff = afterFailure(this.backoff, reason, now);
      log.error(
        { decision: decision.kind, err: message, reason, retryInMs: this.backoff.retryAt - now },
        "scaling action failed; backing off",
      );
      // One event per distinct reason, not one per tick.
      if (reason !== this.lastErrorReason) {
        this.lastErrorReason = reason;
        await this.deps.backends.events.add(
          "scale.error",
          `${decision.kind} failed: ${message}`,
          null,
          { decision: decision.kind, reason: decision.reason, retryAt: this.backoff.retryAt },
          now,
          reason,
        );
      }
    }
    return decision;
  }

  /** What an operator must look at, if anything: an identity conflict first, then stopped replacing. */
  get safetyHold():
    | { code: "identity-conflict"; droplets: Array<{ id: number; name: string }>; since: number }
    | { code: "replacements-failing"; streak: number; since: number | null }
    | null {
    const conflict = this.deps.lifecycle.identityConflict;
    if (conflict)
      return {
        code: "identity-conflict",
        droplets: conflict.droplets.map((d) => ({ id: d.id, name: d.name })),
        since: conflict.since,
      };
    return this.replacementHold;
  }

  /** Replacing is stopped (`replacements-failing`), with why; null while it goes on. */
  get replacementHold(): { code: "replacements-failing"; streak: number; since: number | null } | null {
    if (!replacementsHeld(this.memory, this.deps.config().autoscale)) return null;
    return {
      code: "replacements-failing",
      streak: this.memory.replacementStreak,
      since: this.memory.replacementsSince ?? null,
    };
  }

  /**
   * Starts replacing again after `replacements-failing`: on a configuration reload (serve calls
   * this) or when an operator ran `doproxy autoscale resume` (an `autoscale.resume` event, read
   * by the leader's next tick).
   */
  async resume(why: string): Promise<void> {
    if (!replacementsHeld(this.memory, this.deps.config().autoscale)) return;
    this.memory = resumeReplacements(this.memory);
    this.lastHold = undefined;
    this.deps.log.info({ why }, "replacing unhealthy droplets resumed");
    await this.deps.backends.events.add(
      "scale.resume",
      `replacing unhealthy droplets resumed: ${why}`,
      null,
      undefined,
      Date.now(),
      "replacements-resumed",
    );
  }

  private async resumeIfAsked(): Promise<void> {
    // A resume counts when it came after the streak's latest replacement (the hold began then).
    const heldSince = this.memory.lastReplacementAt;
    if (!replacementsHeld(this.memory, this.deps.config().autoscale) || heldSince === undefined) return;
    const asked = await this.deps.backends.events.latest(RESUME_EVENT);
    if (asked && asked.ts >= heldSince) await this.resume("an operator ran doproxy autoscale resume");
  }

  /** Gathers the policy's inputs from the live pool and the recent samples. */
  async gather(config: Config, now: number): Promise<ScaleInputs> {
    const settings = config.autoscale;
    const windowMs = Math.max(
      3 * config.inventory.flushIntervalMs,
      Math.min(10_000, settings.scaleUpAfterMs || 10_000),
    );
    const window = await this.deps.samples.poolWindow(now - windowMs, now);
    const active = this.deps.pool.routable();
    // Load is requests whose body has arrived: slow or stalled uploads must not buy droplets.
    // Several serves on one inventory: the others' in-flight requests come from their latest
    // samples (at most a few flush intervals old), so a connection breach seen anywhere scales.
    const elsewhere = await this.deps.samples.inFlightElsewhere(
      this.deps.instanceId,
      now - Math.max(2_000, 3 * config.inventory.flushIntervalMs),
      now,
    );
    const inFlight = active.reduce((sum, b) => sum + loadOf(b), 0) + elsewhere;
    const droplets = dropletViews(await this.deps.backends.live(), (id) => this.deps.pool.get(id), {
      timeoutMs: config.digitalocean.bootTimeoutMs,
      now,
    });
    const staticActive = active.length - droplets.filter((d) => d.state === "active").length;
    return {
      now,
      p95Ms: window.p95Ms,
      errorRate: window.requests ? window.errors / window.requests : 0,
      requestsPerSecond: window.requestsPerSecond,
      inFlightPerActive: active.length ? inFlight / active.length : 0,
      activeBackends: active.length,
      droplets,
      floor: scheduleFloor(settings.schedule, settings.min, new Date(now)).floor,
      hourlyPrice: this.deps.hourlyPrice?.(),
      prediction: await this.predictions.predict(config, now, Math.max(0, staticActive)),
      identityConflict: this.deps.lifecycle.identityConflict !== undefined,
    };
  }

  private async record(decision: Decision, inputs: ScaleInputs, dryRun: boolean): Promise<void> {
    const count = (state: string) => inputs.droplets.filter((d) => d.state === state).length;
    const data = {
      dryRun,
      p95Ms: inputs.p95Ms === undefined ? null : Math.round(inputs.p95Ms * 10) / 10,
      errorRate: Math.round(inputs.errorRate * 1000) / 1000,
      requestsPerSecond: Math.round(inputs.requestsPerSecond * 10) / 10,
      inFlightPerActive: Math.round(inputs.inFlightPerActive * 10) / 10,
      active: count("active"),
      booting: count("provisioning") + count("joining"),
      unhealthy: count("unhealthy"),
      draining: count("draining"),
      floor: inputs.floor,
      predicted: inputs.prediction?.droplets ?? null,
      actions: decision.actions,
    };
    // A hold is recorded when its kind changes, not on every tick, so events stay readable.
    if (decision.kind === "hold") {
      if (decision.code === this.lastHold) return;
      this.lastHold = decision.code;
    } else {
      this.lastHold = undefined;
    }
    const prefix = dryRun ? "[dry run] " : "";
    // Event kinds: scale.up, scale.down, scale.reclaim, scale.replace, scale.floor, scale.hold.
    await this.deps.backends.events.add(
      `scale.${decision.kind.replace(/^scale-/, "")}`,
      `${prefix}${decision.reason}`,
      null,
      data,
      Date.now(),
      decision.code,
    );
    this.deps.log.info({ decision: decision.kind, reason: decision.reason, ...data }, "autoscale decision");
  }

  /** Carries out the decision's actions; false when the lease was lost before one of them. */
  private async execute(decision: Decision, config: Config, now: number): Promise<boolean> {
    for (const action of decision.actions) {
      // Checked right before each action (provision writes its rows before calling the API, so
      // an action the check let through is always on record).
      if (!(await this.stillLeads(`${action.kind} (${decision.kind})`))) return false;
      if (action.kind === "create") {
        const rows = await this.deps.lifecycle.provision(action.count, `autoscale: ${decision.kind}`, {
          partial: true,
        });
        this.deps.onProvisioned?.();
        this.deps.log.info(
          { created: rows.map((r) => ({ id: r.id, name: r.name, dropletId: r.dropletId })) },
          "droplets ordered",
        );
      } else if (action.kind === "drain") {
        await this.deps.backends.startDrain(
          action.backendId,
          now + config.proxy.drainTimeoutMs,
          `autoscale: ${decision.reason}`,
          now,
          true,
        );
      } else {
        await this.deps.backends.reclaim(action.backendId, `autoscale: ${decision.reason}`);
      }
    }
    return true;
  }

  /**
   * Fencing: true while this process still leads in this tick's term (same token) with time to
   * spare. A leader that stalled past its lease (a slow API call, a paused process) or lost the
   * database learns here that another process took over, and stops.
   */
  private async stillLeads(before: string): Promise<boolean> {
    const term = this.term;
    if (term !== undefined && (await this.deps.leadership.stillLeads(term))) return true;
    if (this.leader) {
      this.leader = false;
      this.deps.log.warn({ before, token: term }, "leadership lost mid-tick: not acting");
      await this.deps.backends.events
        .add(
          "scale.error",
          `the leader lease was lost before ${before}; another doproxy serve scales the pool now`,
          null,
          { token: term ?? null },
          Date.now(),
          "lease-lost",
        )
        .catch(() => {});
    }
    return false;
  }

  /** Destroys droplets the autoscaler drained once nothing is in flight (or the drain timed out). */
  private async finishDrains(now: number): Promise<void> {
    const done = (await this.deps.backends.live())
      .filter((row: BackendRow) => row.state === "draining" && row.kind === "droplet" && row.autoscaleDrain)
      .filter((row) => row.drainedAt !== null || (row.drainDeadline !== null && now >= row.drainDeadline));
    for (const row of done) {
      // A destroy that failed waits its backoff (5 s doubling to 5 minutes), not the next tick.
      if (this.destroyRetries.waiting(row.id, now)) continue;
      if (!(await this.stillLeads(`destroying backend ${row.id}`))) return;
      try {
        await this.deps.lifecycle.destroy(row, {
          reason: row.drainedAt !== null ? "autoscale: drained" : "autoscale: drain timeout reached",
          // Not if it was put back in rotation (or moved by another process) since it was read.
          from: ["draining"],
        });
        this.destroyRetries.succeeded(row.id);
      } catch (error) {
        this.destroyRetries.failed(row.id, now);
        // Tried again after its backoff; said once per backend and cause, not every tick.
        const message = (error as Error).message;
        if (this.destroyErrors.get(row.id) === message) continue;
        this.destroyErrors.set(row.id, message);
        await this.deps.backends.events.add(
          "scale.error",
          `destroying backend ${row.id} failed: ${message}`,
          row.id,
          undefined,
          Date.now(),
          error instanceof IdentityConflictError
            ? "identity-conflict"
            : error instanceof ApiError
              ? error.reason
              : "error",
        );
      }
    }
  }
}
