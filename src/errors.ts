/**
 * Typed errors raised at the edges (configuration, inventory, cloud API, command line, admin API).
 * `src/cli/` turns them into one or two lines a person can act on (`doproxy: [CODE] message` and a
 * `hint:`) and the exit status the catalogue gives the code: 2 for bad usage or configuration, 1
 * for an operation that failed.
 *
 * ERROR_CODES is the one catalogue: every code a user can see, with what it means, its exit status
 * and the fix. Each class below takes its code and exit status from it; docs/errors.md is generated
 * from it (`npm run docs:errors`, scripts/gen-errors-doc.ts) and a unit test fails when it is stale.
 */
export const ERROR_CODES = {
  DOPROXY_CONFIG: {
    exit: 2,
    meaning:
      "The configuration file cannot be used: the message names the file, line, key and what is wrong.",
    fix: "Correct the key the message names (`doproxy config check` validates without starting anything).",
  },
  DOPROXY_USAGE: {
    exit: 2,
    meaning: "The command line itself is wrong: an unknown backend id, a bad flag value, a missing argument.",
    fix: "Correct the command (`doproxy COMMAND --help` lists its flags).",
  },
  DOPROXY_INVENTORY: {
    exit: 1,
    meaning:
      "The inventory (SQLite or PostgreSQL) cannot be opened, migrated or written, or it refused a change (a backend already registered, a destroyed droplet adopted again).",
    fix: "Follow the hint: check `[inventory]` (path, url, permissions, the database is reachable), or remove the conflicting backend first.",
  },
  DOPROXY_FENCED: {
    exit: 1,
    meaning:
      "A write the leader's fence refused: this process no longer leads the pool (another proxy took the leader lease), so what it was about to record did not happen.",
    fix: "Nothing to repair: the proxy that leads now carries on. If it happens often, check the clocks and the inventory's latency.",
  },
  DOPROXY_REFUSED: {
    exit: 1,
    meaning:
      "An operation refused because it would be unsafe (removing the last active backend, going below `[autoscale] min`).",
    fix: "Pass `--force` when you mean it, or add a backend first.",
  },
  DOPROXY_LISTEN: {
    exit: 1,
    meaning:
      "A listener (proxy or admin) could not be opened on its address: in use, not available, or not permitted.",
    fix: "Change `[proxy] listen` or `[admin] listen`, or stop what holds the port (ports below 1024 need privileges).",
  },
  DOPROXY_SPEND_REFUSED: {
    exit: 1,
    meaning:
      "The spend gate refused a create: it would bill more droplets than `[autoscale] max` or `max-hourly-cost` allow.",
    fix: "Raise `[autoscale] max` or `max-hourly-cost`, remove droplets first, or pass `--force` to `droplets add` on purpose.",
  },
  DOPROXY_IDENTITY_CONFLICT: {
    exit: 1,
    meaning:
      "A destroy refused: droplets carrying this pool's ownership tag exist that this inventory never created; another inventory (a copy) may be using the same pool identity.",
    fix: "Find the other doproxy using a copy of this inventory and stop it, or give it its own pool (`doproxy pool recover`); destroys resume once those droplets are gone or adopted.",
  },
  DOPROXY_CREATE_OUTCOME: {
    exit: 1,
    meaning:
      "A create whose outcome was unknown (an ambiguous API failure): after lookups, some droplets were confirmed not created or could not be confirmed either way.",
    fix: "Do not send the create again: `doproxy droplets sync --apply` (or a running `serve`) settles rows left `provisioning`; then add what is still missing.",
  },
  DOPROXY_API: {
    exit: 1,
    meaning:
      "A DigitalOcean API call failed for good, after the retries its kind allows (authentication, permission, droplet limit, size unavailable, rate limit, server or network).",
    fix: "Follow the hint for the failure's kind (token and its scopes, `[digitalocean]` region/size/image, the account's droplet limit); quote the request id to DigitalOcean support.",
  },
  DOPROXY_BAD_REQUEST: {
    exit: 1,
    meaning:
      "The admin API refused a query parameter (`since`, `step`, too many points); answered as HTTP 400.",
    fix: "Send a duration such as `15m` or epoch milliseconds, or raise `step`.",
  },
  DOPROXY_UNEXPECTED: {
    exit: 1,
    meaning:
      "An error outside this catalogue reached the command line: a failure of the system underneath (a file, a socket) or a bug in doproxy.",
    fix: "Run the command again with `DOPROXY_DEBUG=1` for the stack trace; if it is not a system failure, report it with that trace.",
  },
} as const satisfies Record<string, { exit: 1 | 2; meaning: string; fix: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export class DoproxyError extends Error {
  readonly code: ErrorCode;
  readonly exitCode: 1 | 2;
  readonly hint?: string;

  constructor(code: ErrorCode, message: string, options: { hint?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.exitCode = ERROR_CODES[code].exit;
    this.hint = options.hint;
  }
}

/** A configuration file that cannot be used: names the file, line, key and what is wrong. */
export class ConfigError extends DoproxyError {
  constructor(message: string, hint?: string) {
    super("DOPROXY_CONFIG", message, { hint });
  }
}

/** The command line itself is wrong (unknown id, bad flag value). */
export class UsageError extends DoproxyError {
  constructor(message: string, hint?: string) {
    super("DOPROXY_USAGE", message, { hint });
  }
}

/** The inventory (SQLite or PostgreSQL) cannot be opened, migrated or written. */
export class InventoryError extends DoproxyError {
  constructor(message: string, options: { hint?: string; cause?: unknown } = {}) {
    super("DOPROXY_INVENTORY", message, options);
  }
}

/**
 * A write the leader's fence refused: this process no longer leads the pool (another proxy took
 * the leader lease), so what it was about to record must not happen.
 */
export class FencedError extends DoproxyError {
  constructor(message: string) {
    super("DOPROXY_FENCED", message);
  }
}

/** An operation that was refused because it would be unsafe (e.g. removing the last backend). */
export class RefusedError extends DoproxyError {
  constructor(message: string, hint?: string) {
    super("DOPROXY_REFUSED", message, { hint });
  }
}

/** A listener could not be opened on its address (in use, not available, not permitted). */
export class ListenError extends DoproxyError {
  constructor(message: string, hint?: string) {
    super("DOPROXY_LISTEN", message, { hint });
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
    super("DOPROXY_SPEND_REFUSED", message, { hint });
  }
}

/**
 * A destroy refused while a droplet carrying this pool's ownership tag exists that this
 * inventory never created: another inventory may be using the same pool identity (a copied
 * inventory), and destroying on its behalf could take its site down.
 */
export class IdentityConflictError extends DoproxyError {
  constructor(message: string, hint?: string) {
    super("DOPROXY_IDENTITY_CONFLICT", message, { hint });
  }
}

/**
 * A create whose outcome was unknown (an ambiguous API failure), after lookups: some of its
 * droplets were confirmed not created, or could not be confirmed either way. Never says to try
 * again: a create sent again after one that did land duplicates droplets.
 */
export class CreateOutcomeError extends DoproxyError {
  constructor(message: string, hint?: string) {
    super("DOPROXY_CREATE_OUTCOME", message, { hint });
  }
}

/**
 * Why an API call failed, as a code the program acts on (the adapter reads the API's answer once;
 * nothing downstream parses message text). Also the reason code of `scale.error` events.
 */
export const API_FAILURE_REASONS = {
  auth: "DigitalOcean rejected the API token (401).",
  forbidden: "The token lacks a scope the call needs (403).",
  "not-found": "The resource does not exist, or not yet (404).",
  "droplet-limit": "The account's droplet limit refused a create (422).",
  "size-unavailable": "The size is not available in the region (422).",
  invalid: "The API refused the request as invalid (422 or 400): region, size, image or a field.",
  "rate-limited": "The API's rate limit was exhausted (429).",
  server: "The API answered 5xx.",
  network: "No answer: a timeout, a refused or reset connection.",
} as const;

export type ApiFailureReason = keyof typeof API_FAILURE_REASONS;

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
    super("DOPROXY_API", message, { hint: options.hint, cause: options.cause });
    this.status = options.status;
    this.reason = options.reason ?? (options.status === undefined ? "network" : "server");
    this.ambiguous = options.ambiguous ?? false;
    this.requestId = options.requestId;
  }
}

/** A query parameter the admin API refused (admin/api.ts); the admin server answers 400 with it. */
export class BadRequest extends DoproxyError {
  constructor(message: string) {
    super("DOPROXY_BAD_REQUEST", message);
  }
}
