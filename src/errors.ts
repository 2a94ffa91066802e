/**
 * Typed errors raised at the edges (configuration, inventory, cloud API, command line).
 * `src/cli/` turns them into one or two lines a person can act on and an exit code:
 * 2 for bad usage or configuration, 1 for an operation that failed.
 */
export class DoproxyError extends Error {
  readonly code: string;
  readonly exitCode: 1 | 2;
  readonly hint?: string;

  constructor(
    code: string,
    message: string,
    options: { exitCode?: 1 | 2; hint?: string; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.exitCode = options.exitCode ?? 1;
    this.hint = options.hint;
  }
}

/** A configuration file that cannot be used: names the file, line, key and what is wrong. */
export class ConfigError extends DoproxyError {
  constructor(message: string, hint?: string) {
    super("DOPROXY_CONFIG", message, { exitCode: 2, hint });
  }
}

/** The command line itself is wrong (unknown id, bad flag value). */
export class UsageError extends DoproxyError {
  constructor(message: string, hint?: string) {
    super("DOPROXY_USAGE", message, { exitCode: 2, hint });
  }
}

/** The inventory (SQLite or PostgreSQL) cannot be opened, migrated or written. */
export class InventoryError extends DoproxyError {
  constructor(message: string, options: { hint?: string; cause?: unknown } = {}) {
    super("DOPROXY_INVENTORY", message, { exitCode: 1, ...options });
  }
}

/**
 * A write the leader's fence refused: this process no longer leads the pool (another proxy took
 * the leader lease), so what it was about to record must not happen.
 */
export class FencedError extends DoproxyError {
  constructor(message: string) {
    super("DOPROXY_FENCED", message, { exitCode: 1 });
  }
}

/** An operation that was refused because it would be unsafe (e.g. removing the last backend). */
export class RefusedError extends DoproxyError {
  constructor(message: string, hint?: string) {
    super("DOPROXY_REFUSED", message, { exitCode: 1, hint });
  }
}

/** A listener could not be opened on its address (in use, not available, not permitted). */
export class ListenError extends DoproxyError {
  constructor(message: string, hint?: string) {
    super("DOPROXY_LISTEN", message, { exitCode: 1, hint });
  }
}

/**
 * A create the spend gate refused (cloud/spend-gate.ts): it would bill more droplets than
 * `[autoscale] max` or `max-hourly-cost` allow. `cut` says which.
 */
export class SpendRefusedError extends DoproxyError {
  constructor(
    message: string,
    readonly cut: "at-max" | "budget",
    hint?: string,
  ) {
    super("DOPROXY_SPEND_REFUSED", message, { exitCode: 1, hint });
  }
}

/**
 * A destroy refused while a droplet carrying this pool's ownership tag exists that this
 * inventory never created: another inventory may be using the same pool identity (a copied
 * inventory), and destroying on its behalf could take its site down.
 */
export class IdentityConflictError extends DoproxyError {
  constructor(message: string, hint?: string) {
    super("DOPROXY_IDENTITY_CONFLICT", message, { exitCode: 1, hint });
  }
}

/**
 * A create whose outcome was unknown (an ambiguous API failure), after lookups: some of its
 * droplets were confirmed not created, or could not be confirmed either way. Never says to try
 * again: a create sent again after one that did land duplicates droplets.
 */
export class CreateOutcomeError extends DoproxyError {
  constructor(message: string, hint?: string) {
    super("DOPROXY_CREATE_OUTCOME", message, { exitCode: 1, hint });
  }
}

/**
 * Why an API call failed, as a code the program acts on (the adapter reads the API's answer once;
 * nothing downstream parses message text).
 */
export type ApiFailureReason =
  | "auth"
  | "forbidden"
  | "not-found"
  | "droplet-limit"
  | "size-unavailable"
  | "invalid"
  | "rate-limited"
  | "server"
  | "network";

/** A DigitalOcean API call failed for good (after the retries its kind allows). */
export class ApiError extends DoproxyError {
  readonly status: number | undefined;
  readonly reason: ApiFailureReason;
  /**
   * The request may have taken effect although it failed (a timeout, a reset connection, a 5xx
   * after the body was sent): a create that failed this way must be settled by lookups, never sent again.
   */
  readonly ambiguous: boolean;
  /** The API's request_id, for DigitalOcean support. */
  readonly requestId: string | undefined;

  constructor(
    message: string,
    options: {
      status?: number;
      hint?: string;
      cause?: unknown;
      reason?: ApiFailureReason;
      ambiguous?: boolean;
      requestId?: string;
    } = {},
  ) {
    super("DOPROXY_API", message, { exitCode: 1, hint: options.hint, cause: options.cause });
    this.status = options.status;
    this.reason = options.reason ?? (options.status === undefined ? "network" : "server");
    this.ambiguous = options.ambiguous ?? false;
    this.requestId = options.requestId;
  }
}
