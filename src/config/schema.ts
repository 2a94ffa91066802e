import { availableParallelism } from "node:os";
import path from "node:path";
import proxyAddr from "proxy-addr";
import { z } from "zod";
import { type HostPort, isLoopback, parseHostPort } from "../util/address.js";
import { formatDuration, parseDuration } from "../util/duration.js";
import { isValidCron, isValidScheduleCron } from "./cron.js";
import { isValidDropletNamePrefix, isValidHealthPath, isValidTag } from "./digitalocean-rules.js";

/**
 * The doproxy.toml contract, declared once: every key's TOML name, runtime name, type, default,
 * range, reload behaviour and one sentence live on one line of a section table below. The zod
 * schema built from those tables validates the file (kebab-case keys, unknown keys are errors) and
 * its transforms produce the runtime shapes (milliseconds, HostPort, resolved paths), so `Config`
 * is the schema's output type. `npm run docs:config` writes docs/configuration.md from the same
 * tables.
 */

/** The longest delay a Node.js timer honours (2^31 − 1 ms, about 24.8 days); longer ones fire at once. */
export const MAX_TIMER_MS = 2_147_483_647;
const DAY_MS = 86_400_000;
const DURATION_HINT = 'expected a duration such as "250ms", "2s", "5m", "1h" or "7d"';

/** Whether an edit to the key is applied by a running `serve` ("live") or at its next start. */
export type Reload = "live" | "restart";

/** A value kind: its validation and transform, and how the reference names its type and range. */
interface Kind<S extends z.ZodType> {
  schema: S;
  type: string;
  range?: string;
}

/** One key of a section: everything about it, in one place. */
export interface KeySpec<N extends string = string, S extends z.ZodType = z.ZodType> {
  /** The property name the program reads (camelCase, `Ms` for durations). */
  as: N;
  schema: S;
  type: string;
  range: string | undefined;
  /** The default as written in TOML; undefined = the key is optional and unset by default. */
  default: unknown;
  doc: string;
  reload: Reload;
  /** What doproxy.toml shows instead of the default (an interpolated secret, an optional key's example). */
  example?: unknown;
}

/** A key with a default (parsed like a value from the file, so it passes the same transforms). */
function key<const N extends string, S extends z.ZodType>(
  as: N,
  kind: Kind<S>,
  fallback: z.input<S>,
  doc: string,
  reload: Reload = "live",
): KeySpec<N, z.ZodPrefault<S>> {
  return {
    as,
    schema: kind.schema.prefault(fallback),
    type: kind.type,
    range: kind.range,
    default: fallback,
    doc,
    reload,
  };
}

/** A key that is unset unless the file sets it. */
function optional<const N extends string, S extends z.ZodType>(
  as: N,
  kind: Kind<S>,
  doc: string,
  reload: Reload = "live",
): KeySpec<N, z.ZodOptional<S>> {
  return {
    as,
    schema: kind.schema.optional(),
    type: kind.type,
    range: kind.range,
    default: undefined,
    doc,
    reload,
  };
}

/** The value doproxy.toml shows for a key instead of its default (commented out when unset by default). */
function shown<T extends KeySpec>(example: unknown, spec: T): T {
  return { ...spec, example };
}

type Keys = Record<string, KeySpec>;
/** A section's runtime shape: each key under its runtime name, with its transformed type. */
type Renamed<K extends Keys> = { [P in keyof K as K[P]["as"]]: z.output<K[P]["schema"]> };

/** The strict (unknown keys are errors) TOML table of a section, still under its TOML names. */
function table<K extends Keys>(keys: K) {
  const shape: Record<string, z.ZodType> = {};
  for (const [name, spec] of Object.entries(keys)) shape[name] = spec.schema;
  return z.strictObject(shape as { [P in keyof K]: K[P]["schema"] });
}

/** Moves each key of a parsed table to its runtime name. */
function renamed<K extends Keys>(keys: K) {
  return (value: Record<string, unknown>): Renamed<K> => {
    const out: Record<string, unknown> = {};
    for (const [name, spec] of Object.entries(keys)) out[spec.as] = value[name];
    return out as Renamed<K>;
  };
}

const ms = (text: string): number => parseDuration(text) as number;

/**
 * A duration string whose value lies in [minMs, maxMs], as milliseconds: every duration the
 * runtime turns into a timer is bounded by MAX_TIMER_MS, so `config check` rejects what `serve`
 * could not honour.
 */
function duration(minMs: number, maxMs: number) {
  const upper = maxMs === MAX_TIMER_MS ? "24d (the longest a timer can wait)" : formatDuration(maxMs);
  return {
    schema: z
      .string()
      .superRefine((text, ctx) => {
        const value = parseDuration(text);
        if (value === undefined) ctx.addIssue({ code: "custom", message: DURATION_HINT });
        else if (value < minMs || value > maxMs)
          ctx.addIssue({
            code: "custom",
            message: `expected a duration from ${formatDuration(minMs)} to ${upper}`,
          });
      })
      .transform(ms),
    type: "duration",
    range: `${formatDuration(minMs)} to ${maxMs === MAX_TIMER_MS ? "24d" : formatDuration(maxMs)}`,
  };
}
/** A timer delay: at least 1 ms, at most what a timer can wait. */
const timerDuration = duration(1, MAX_TIMER_MS);
/** A window or a cooldown compared against timestamps (may be zero; never a timer of its own). */
const windowDuration = duration(0, 365 * DAY_MS);

const hostPort = {
  schema: z
    .string()
    .refine((text) => parseHostPort(text) !== undefined, {
      message: 'expected HOST:PORT with an IP address or host name, such as "127.0.0.1:8080" or "[::1]:8080"',
    })
    .transform((text) => parseHostPort(text) as HostPort),
  type: "HOST:PORT",
};

function count(min: number, max?: number) {
  const base = z.number().int({ message: "expected a whole number" }).min(min);
  return {
    schema: max === undefined ? base : base.max(max),
    type: "integer",
    range: max === undefined ? `at least ${min}` : `${min} to ${max}`,
  };
}

function number(check: (n: z.ZodNumber) => z.ZodNumber, range: string) {
  return { schema: check(z.number()), type: "number", range };
}

const bool = { schema: z.boolean(), type: "boolean" };
const text = { schema: z.string(), type: "string" };
const nonEmpty = { schema: z.string().min(1), type: "string", range: "not empty" };

function oneOf<const T extends readonly [string, ...string[]]>(values: T) {
  return { schema: z.enum(values), type: values.map((v) => `"${v}"`).join(" | ") };
}

/** A relative path is relative to the configuration file's folder. */
function filePath(baseDir: string) {
  return {
    schema: z
      .string()
      .transform((file) => (file === "" ? "" : path.isAbsolute(file) ? file : path.resolve(baseDir, file))),
    type: "path",
  };
}

/** A DNS name as an ACME order may name it (no wildcard: http-01 and tls-alpn-01 cannot prove one). */
const DOMAIN_NAME =
  /^(?=.{1,253}$)([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)*[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$/;
/** The ACME directories `[tls] directory` names by a word. */
export const ACME_DIRECTORIES = {
  production: "https://acme-v02.api.letsencrypt.org/directory",
  staging: "https://acme-staging-v02.api.letsencrypt.org/directory",
} as const;
const acmeDirectory = {
  schema: z
    .string()
    .refine((v) => v in ACME_DIRECTORIES || /^https?:\/\/[^\s]+$/.test(v), {
      message: 'expected "production", "staging" or an https:// URL of an ACME directory',
    })
    .transform((v) => (v in ACME_DIRECTORIES ? ACME_DIRECTORIES[v as keyof typeof ACME_DIRECTORIES] : v)),
  type: "string",
  range: '"production", "staging" or a URL',
};

/** What identifies a client: its address (behind trusted proxies), or a request header. */
export type ClientKey = { kind: "ip" } | { kind: "header"; name: string };

/** An HTTP field name (RFC 9110 token), as a header-keyed policy names it. */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** "ip", or "header:Name": what identifies a client for rate limits and sticky hashing. */
const clientKey = {
  schema: z
    .string()
    .refine(
      (value) =>
        value === "ip" || (value.startsWith("header:") && HEADER_NAME.test(value.slice("header:".length))),
      { message: 'expected "ip" or "header:NAME" such as "header:X-Api-Key"' },
    )
    .transform(
      (value): ClientKey =>
        value === "ip"
          ? { kind: "ip" }
          : { kind: "header", name: value.slice("header:".length).toLowerCase() },
    ),
  type: '"ip" | "header:NAME"',
};
/** CIDR blocks, addresses, or proxy-addr's names (loopback, linklocal, uniquelocal). */
const trustedProxies = {
  schema: z.array(z.string()).superRefine((list, ctx) => {
    for (const entry of list) {
      try {
        proxyAddr.compile(entry);
      } catch {
        ctx.addIssue({
          code: "custom",
          message: `${JSON.stringify(entry)}: expected a CIDR block such as "10.0.0.0/8", an address, or loopback, linklocal, uniquelocal`,
        });
      }
    }
  }),
  type: "array of CIDR blocks, addresses or names",
};
/** A cookie name (RFC 6265 token). */
const cookieName = {
  schema: z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, {
    message: "expected a cookie name: letters, digits and !#$%&'*+.^_`|~-",
  }),
  type: "string",
  range: "a cookie name",
};
/** "*" or an origin as browsers send it: scheme://host[:port], nothing else. */
const origin = z.string().refine(
  (value) => {
    if (value === "*") return true;
    try {
      const url = new URL(value);
      return url.origin === value && url.origin !== "null";
    } catch {
      return false;
    }
  },
  { message: 'expected "*" or an origin such as "https://app.example.com" (scheme, host, port; no path)' },
);
const headerList = {
  schema: z.array(
    z.string().regex(/^(\*|[!#$%&'*+.^_`|~0-9A-Za-z-]+)$/, { message: "expected a header name or *" }),
  ),
  type: "array of header names or *",
};

/** Processes that proxy (node:cluster): 1, a number, or "auto" for one per core (resolved here). */
const workers = {
  schema: z
    .union([z.number(), z.literal("auto")], { message: 'expected a whole number from 1 to 64, or "auto"' })
    .refine((w) => w === "auto" || (Number.isInteger(w) && w >= 1 && w <= 64), {
      message: 'expected a whole number from 1 to 64, or "auto"',
    })
    .transform((w) => (w === "auto" ? Math.max(1, Math.min(64, availableParallelism())) : w)),
  type: 'integer | "auto"',
  range: "1 to 64",
};

/** Strategies, sticky modes: the lists the rest of the program derives its unions from. */
export const STRATEGIES = ["round-robin", "least-connections", "latency"] as const;
export const STICKY_MODES = ["none", "cookie", "hash"] as const;

/** Cross-key rules compare durations only when each passed its own check (else it is still text). */
function bothNumbers(...values: unknown[]): boolean {
  return values.every((value) => typeof value === "number");
}

/** True when an admin listener on this address would need a token (anything but loopback). */
function adminNeedsToken(listen: HostPort): boolean {
  return !isLoopback(listen.host);
}

/** Every section's key table; relative paths resolve against `baseDir` (the file's folder). */
export function configKeys(baseDir: string) {
  const file = filePath(baseDir);
  return {
    proxy: {
      listen: key(
        "listen",
        hostPort,
        "0.0.0.0:8080",
        "HOST:PORT the proxy accepts client traffic on ([::]:8080 for IPv6).",
      ),
      strategy: key(
        "strategy",
        oneOf(STRATEGIES),
        "round-robin",
        "How a backend is chosen: round-robin, least-connections, or latency (EWMA round-trip time, power of two choices).",
      ),
      workers: key(
        "workers",
        workers,
        1,
        'Processes that proxy (node:cluster): a number, or "auto" for one per core.',
        "restart",
      ),
      "x-forwarded-for": key(
        "xForwardedFor",
        bool,
        true,
        "Add X-Forwarded-For (appended), X-Forwarded-Proto and X-Forwarded-Host.",
      ),
      retries: key(
        "retries",
        count(0, 10),
        1,
        "Idempotent requests without a body are retried on another backend this many times if the connect fails.",
      ),
      "connect-timeout": key(
        "connectTimeoutMs",
        timerDuration,
        "2s",
        "How long connecting to a backend may take.",
      ),
      timeout: key(
        "timeoutMs",
        timerDuration,
        "60s",
        "How long to wait for a backend's response headers, from the end of the request body (then 504).",
      ),
      "body-idle-timeout": key(
        "bodyIdleTimeoutMs",
        timerDuration,
        "60s",
        "A request body that sends nothing for this long is cut (408).",
      ),
      "header-timeout": key(
        "headerTimeoutMs",
        duration(100, MAX_TIMER_MS),
        "30s",
        "A client must send its request headers within this (slowloris; then 408).",
      ),
      "drain-timeout": key(
        "drainTimeoutMs",
        duration(0, MAX_TIMER_MS),
        "30s",
        "How long requests in flight may finish on shutdown or when a backend is removed.",
      ),
      "max-header-bytes": key(
        "maxHeaderBytes",
        count(1024, 1_048_576),
        16_384,
        "Request line and headers together; larger answers 431 (applies when the listener next opens).",
        "restart",
      ),
      "max-target-length": key(
        "maxTargetLength",
        count(16, 1_048_576),
        8192,
        "Longest request target (path and query); longer answers 414.",
      ),
      "max-in-flight-per-client": key(
        "maxInFlightPerClient",
        count(0, 1_000_000),
        0,
        "Requests one client address may have in flight at once (429 beyond); 0 = no cap.",
      ),
      "trusted-proxies": key(
        "trustedProxies",
        trustedProxies,
        [],
        'Peers whose X-Forwarded-For names the client (CIDR blocks, addresses, "loopback"); others are their socket address.',
      ),
      "slow-start": key(
        "slowStartMs",
        duration(0, 3_600_000),
        "0s",
        "A backend new in rotation ramps from 10 % to its full weight over this long; 0s = at once.",
      ),
      sticky: key(
        "stickyMode",
        oneOf(STICKY_MODES),
        "none",
        "none, cookie (a cookie names the backend) or hash (consistent hash of sticky-hash-key).",
      ),
      "sticky-cookie": key(
        "stickyCookie",
        cookieName,
        "doproxy_backend",
        "The sticky cookie's name (HttpOnly, SameSite=Lax, Secure on HTTPS).",
      ),
      "sticky-max-age": key(
        "stickyMaxAgeMs",
        duration(0, 400 * DAY_MS),
        "0s",
        "The sticky cookie's lifetime; 0s = a session cookie, gone when the browser closes.",
      ),
      "sticky-hash-key": key(
        "stickyHashKey",
        clientKey,
        "ip",
        'What sticky = "hash" pins: "ip" or "header:NAME" (e.g. "header:X-User-Id").',
      ),
      "tls-cert": shown(
        "cert.pem",
        optional(
          "tlsCert",
          { ...file, schema: z.string().min(1).pipe(file.schema) },
          "Certificate file (PEM); with tls-key the listener speaks HTTPS, and the files are reloaded when they change.",
        ),
      ),
      "tls-key": shown(
        "key.pem",
        optional(
          "tlsKey",
          { ...file, schema: z.string().min(1).pipe(file.schema) },
          "Private key file (PEM) of tls-cert.",
        ),
      ),
      "redirect-http": shown(
        "0.0.0.0:80",
        optional(
          "redirectHttp",
          hostPort,
          "With TLS: also listen for plain HTTP here and redirect it to HTTPS.",
        ),
      ),
    },
    health: {
      path: key(
        "path",
        {
          schema: z.string().refine(isValidHealthPath, {
            message:
              'expected a path starting with "/" without spaces or control characters, such as "/health"',
          }),
          type: "string",
          range: 'a path starting with "/"',
        },
        "/health",
        "GET on every backend; 2xx and 3xx pass.",
      ),
      interval: key("intervalMs", duration(10, MAX_TIMER_MS), "1s", "Time between checks of one backend."),
      timeout: key("timeoutMs", timerDuration, "500ms", "A check that takes longer fails."),
      "healthy-after": key(
        "healthyAfter",
        count(1),
        2,
        "Passes in a row before a joining or unhealthy backend takes traffic.",
      ),
      "unhealthy-after": key(
        "unhealthyAfter",
        count(1),
        3,
        "Failures in a row (checks or refused connections) before a backend leaves rotation.",
      ),
      "join-timeout": key(
        "joinTimeoutMs",
        timerDuration,
        "5m",
        "A droplet still joining (failing checks) after this becomes unhealthy and is replaced.",
      ),
      "eject-after": key(
        "ejectAfter",
        count(0, 10_000),
        0,
        "Outlier ejection: this many 5xx answers or connect failures in a row take a backend out of rotation even while its health path passes; 0 = off.",
      ),
      "eject-time": key(
        "ejectTimeMs",
        duration(100, 3_600_000),
        "30s",
        "The first ejection lasts this long; each one again in a row lasts twice as long.",
      ),
      "max-eject-time": key(
        "maxEjectTimeMs",
        duration(100, MAX_TIMER_MS),
        "5m",
        "The longest an ejection lasts.",
      ),
      "max-ejected-percent": key(
        "maxEjectedPercent",
        count(0, 100),
        50,
        "At most this share of the active backends is ejected at once (never the last one).",
      ),
    },
    inventory: {
      path: key(
        "path",
        { ...file, schema: z.string().min(1).pipe(file.schema), range: "not empty" },
        "inventory/doproxy.db",
        "SQLite file: backends, round-trip time samples, events.",
        "restart",
      ),
      url: shown(
        "postgres://doproxy:${DOPROXY_DB_PASSWORD}@db-host:25060/doproxy?sslmode=verify-full",
        optional(
          "url",
          {
            schema: z.string().regex(/^postgres(ql)?:\/\/\S+$/, {
              message: 'expected a PostgreSQL URL such as "postgres://user:${PASSWORD}@host:5432/doproxy"',
            }),
            type: "PostgreSQL URL",
          },
          "PostgreSQL instead of the SQLite file, for several proxies sharing one pool; interpolate the password (${DOPROXY_DB_PASSWORD}).",
          "restart",
        ),
      ),
      "flush-interval": key(
        "flushIntervalMs",
        duration(10, 3_600_000),
        "1s",
        "In-memory aggregates are written once per interval, in one transaction.",
      ),
      "raw-retention": key(
        "rawRetentionMs",
        duration(600_000, 3650 * DAY_MS),
        "6h",
        "Raw per-interval samples are kept this long, then only as per-minute rows.",
      ),
      "minute-retention": key(
        "minuteRetentionMs",
        duration(3_600_000, 3650 * DAY_MS),
        "2d",
        "Per-minute rows are kept this long, then only as per-hour rows.",
      ),
      retention: key(
        "retentionMs",
        duration(60_000, 3650 * DAY_MS),
        "7d",
        "Per-hour rows and events are kept this long.",
      ),
    },
    admin: {
      listen: key(
        "listen",
        hostPort,
        "127.0.0.1:9090",
        "Admin API, metrics and dashboard; a non-loopback address needs a token.",
      ),
      token: shown(
        "${DOPROXY_ADMIN_TOKEN}",
        optional(
          "token",
          { schema: z.string().transform((t) => t || undefined), type: "string" },
          'When set, admin requests need "Authorization: Bearer <token>"; never logged.',
        ),
      ),
      "allowed-hosts": key(
        "allowedHosts",
        {
          schema: z.array(z.string().min(1)).transform((hosts) => hosts.map((h) => h.toLowerCase())),
          type: "array of host names",
        },
        [],
        "Host names the admin listener answers besides IP literals, localhost and its listen host (DNS rebinding).",
      ),
    },
    digitalocean: {
      token: shown(
        "${DIGITALOCEAN_TOKEN}",
        key("token", text, "", 'API token (usually "${DIGITALOCEAN_TOKEN}"); never logged.', "restart"),
      ),
      "api-url": key(
        "apiUrl",
        {
          schema: z
            .url({
              protocol: /^https?$/,
              message: 'expected an http:// or https:// URL such as "https://api.digitalocean.com"',
            })
            .transform((url) => url.replace(/\/+$/, "")),
          type: "URL",
          range: "http or https",
        },
        "https://api.digitalocean.com",
        "The DigitalOcean API; point it at `doproxy sim` (http://127.0.0.1:4010) to try everything locally.",
        "restart",
      ),
      region: key("region", nonEmpty, "nyc3", "Region of new droplets.", "restart"),
      size: key("size", nonEmpty, "s-1vcpu-1gb", "Size slug of new droplets.", "restart"),
      image: key("image", nonEmpty, "ubuntu-24-04-x64", "Image slug or id of new droplets.", "restart"),
      "ssh-keys": key(
        "sshKeys",
        { schema: z.array(z.union([z.string(), z.number().int()])), type: "array of ids or fingerprints" },
        [],
        "Ids or fingerprints of SSH keys to install on new droplets.",
        "restart",
      ),
      tags: key(
        "tags",
        {
          schema: z
            .array(
              z.string().refine(isValidTag, {
                message: "expected a DigitalOcean tag: 1 to 255 letters, digits, '_', '-' or ':'",
              }),
            )
            .min(1, { message: "expected at least one tag: the pool's droplets are found by it" }),
          type: "array of tags",
          range: "at least one",
        },
        ["doproxy"],
        "Every droplet doproxy creates carries these; the first one identifies its pool.",
        "restart",
      ),
      "name-prefix": key(
        "namePrefix",
        {
          schema: z.string().refine(isValidDropletNamePrefix, {
            message:
              "expected a droplet name prefix: letters, digits, '.' and '-', starting with a letter or digit, at most 200 characters",
          }),
          type: "string",
          range: "at most 200 characters",
        },
        "doproxy-",
        "New droplets are named <prefix><random suffix>.",
        "restart",
      ),
      "user-data-file": key(
        "userDataFile",
        file,
        "",
        "Cloud-init user data for new droplets (should start the backend on backend-port); empty = none.",
        "restart",
      ),
      "vpc-uuid": key("vpcUuid", text, "", 'VPC for new droplets ("" = the region\'s default).', "restart"),
      "backend-port": key(
        "backendPort",
        count(1, 65535),
        8080,
        "Port the backend application listens on inside each droplet.",
        "restart",
      ),
      "use-private-ip": key(
        "usePrivateIp",
        bool,
        false,
        "Proxy to the droplet's private (VPC) address: only when doproxy runs inside the droplets' VPC.",
        "restart",
      ),
      "boot-timeout": key(
        "bootTimeoutMs",
        duration(1000, MAX_TIMER_MS),
        "5m",
        "A droplet not active this long after its create is destroyed and replaced.",
      ),
      "api-budget": key(
        "apiBudgetPerHour",
        count(60, 5000),
        1000,
        "API requests an hour doproxy allows itself (DigitalOcean's 5,000 are per account); polling slows near it.",
        "restart",
      ),
      weight: key(
        "weight",
        {
          schema: z
            .union([z.number(), z.literal("vcpus")], {
              message: 'expected a whole number from 1 to 1000, or "vcpus"',
            })
            .refine((w) => w === "vcpus" || (Number.isInteger(w) && w >= 1 && w <= 1000), {
              message: 'expected a whole number from 1 to 1000, or "vcpus"',
            }),
          type: 'integer | "vcpus"',
          range: "1 to 1000",
        },
        1,
        'Share of traffic of each droplet doproxy creates or adopts, or "vcpus" for its size\'s vCPU count.',
        "restart",
      ),
      "reserved-ip": shown(
        "203.0.113.10",
        optional(
          "reservedIp",
          {
            schema: z.ipv4({ message: 'expected an IPv4 address such as "203.0.113.10"' }),
            type: "IPv4 address",
          },
          "A reserved IP kept on the droplet of the serve that holds it (failover for clients).",
          "restart",
        ),
      ),
      "droplet-id": key(
        "dropletId",
        {
          schema: z
            .union([z.number(), z.literal("metadata")], {
              message: 'expected a droplet id (a whole number) or "metadata"',
            })
            .refine((id) => id === "metadata" || (Number.isInteger(id) && id > 0), {
              message: 'expected a droplet id (a whole number) or "metadata"',
            }),
          type: 'integer | "metadata"',
        },
        "metadata",
        'This proxy\'s own droplet (for reserved-ip): a droplet id, or "metadata" to ask the droplet metadata service.',
        "restart",
      ),
    },
    autoscale: {
      enabled: key("enabled", bool, false, "Run the scaling controller inside `doproxy serve`."),
      "dry-run": key("dryRun", bool, false, "Compute and record decisions without calling the API."),
      min: key("min", count(0), 1, "Never fewer droplets than this."),
      max: key("max", count(1), 5, "Never more droplets than this."),
      evaluate: key(
        "evaluate",
        {
          schema: z
            .string()
            .refine(isValidCron, { message: 'expected a node-cron expression such as "*/5 * * * * *"' }),
          type: "cron (with seconds)",
        },
        "*/5 * * * * *",
        "How often the policy runs (node-cron expression with seconds).",
      ),
      "scale-up-latency": key(
        "scaleUpLatencyMs",
        timerDuration,
        "500ms",
        "Scale up when the pool's p95 round-trip time is above this ...",
      ),
      "scale-up-connections": key(
        "scaleUpConnections",
        number((n) => n.positive(), "above 0"),
        50,
        "... or in-flight requests per active backend are above this ...",
      ),
      "scale-up-after": key("scaleUpAfterMs", windowDuration, "1m", "... continuously for this long."),
      "scale-up-cooldown": key(
        "scaleUpCooldownMs",
        windowDuration,
        "5m",
        "At least this long between scale-ups.",
      ),
      "scale-down-latency": key(
        "scaleDownLatencyMs",
        timerDuration,
        "150ms",
        "Scale down when p95 is below this ...",
      ),
      "scale-down-connections": key(
        "scaleDownConnections",
        number((n) => n.nonnegative(), "at least 0"),
        10,
        "... and in-flight per active backend is below this ...",
      ),
      "scale-down-after": key(
        "scaleDownAfterMs",
        windowDuration,
        "10m",
        "... continuously for this long: one droplet is removed.",
      ),
      "scale-down-cooldown": key(
        "scaleDownCooldownMs",
        windowDuration,
        "15m",
        "At least this long between scale-downs.",
      ),
      "replace-unhealthy-after": key(
        "replaceUnhealthyAfterMs",
        windowDuration,
        "3m",
        "A droplet unhealthy this long is replaced (within max and the budget).",
      ),
      "replacement-attempts": key(
        "replacementAttempts",
        count(1, 100),
        3,
        "Replacements in a row that never become healthy before replacing stops (replacements-failing; `doproxy autoscale resume`).",
      ),
      "max-hourly-cost": shown(
        0.5,
        optional(
          "maxHourlyCost",
          number((n) => n.positive().max(1_000_000), "above 0, at most 1000000"),
          "Budget cap in US$/hour for the pool's droplets; a scale-up that would exceed it is held or cut. Unset: no cap.",
        ),
      ),
      schedule: shown(
        [{ cron: "0 8 * * 1-5", min: 3 }],
        key(
          "schedule",
          {
            schema: z.array(
              z.strictObject({
                cron: z.string().refine(isValidScheduleCron, {
                  message: 'expected a cron expression such as "0 8 * * 1-5"',
                }),
                min: count(0).schema,
              }),
            ),
            type: "array of { cron, min }",
          },
          [],
          "Floors by time of day ([[autoscale.schedule]]): from each cron time until the next entry's, min is raised.",
        ),
      ),
      predictive: key(
        "predictive",
        bool,
        false,
        "Raise the floor ahead of load the history says is coming (the same moment of previous periods).",
      ),
      "predictive-period": key(
        "predictivePeriodMs",
        duration(60_000, 28 * DAY_MS),
        "24h",
        'The period load repeats over: "24h" (days) or "7d" (weeks).',
      ),
      "predictive-periods": key(
        "predictivePeriods",
        count(1, 28),
        7,
        "How many previous periods to learn from.",
      ),
      "predictive-margin": key(
        "predictiveMarginMs",
        windowDuration,
        "2m",
        "Raise the floor this long before the predicted load, beyond the learned boot time.",
      ),
    },
    "rate-limit": {
      requests: key(
        "requests",
        count(0, 1_000_000_000),
        0,
        "Per-client rate limit: requests allowed per `per` (429 beyond); 0 = off.",
      ),
      per: key("perMs", duration(1, 31 * DAY_MS), "1s", "The window those requests refill over."),
      burst: shown(
        20,
        optional(
          "burst",
          count(1, 1_000_000_000),
          "Requests a quiet client may send at once; unset: `requests`.",
        ),
      ),
      key: key(
        "key",
        clientKey,
        "ip",
        '"ip" (the client address, see [proxy] trusted-proxies) or "header:NAME" (e.g. "header:X-Api-Key").',
      ),
      "max-keys": key(
        "maxKeys",
        count(100, 10_000_000),
        100_000,
        "Clients remembered at once; the least recently seen are forgotten first (bounds memory under a flood).",
      ),
    },
    tls: {
      acme: key(
        "acme",
        bool,
        false,
        "Obtain and renew the HTTPS certificate of `domains` by ACME (Let's Encrypt by default), shared through the inventory by every proxy; instead of [proxy] tls-cert.",
        "restart",
      ),
      email: key(
        "email",
        text,
        "",
        "Contact address given to the certificate authority (expiry warnings); may be empty.",
        "restart",
      ),
      domains: key(
        "domains",
        {
          schema: z
            .array(z.string().regex(DOMAIN_NAME, { message: "expected a DNS name such as www.example.com" }))
            .transform((names) => [...new Set(names.map((n) => n.toLowerCase()))]),
          type: "array of DNS names",
        },
        [],
        "Names the one ACME certificate covers (its subject alternative names); each must resolve to this proxy.",
        "restart",
      ),
      directory: key(
        "directory",
        acmeDirectory,
        "production",
        'ACME directory: "production" (Let\'s Encrypt), "staging" (Let\'s Encrypt staging: untrusted, generous limits) or an https:// URL of another CA.',
        "restart",
      ),
      challenge: key(
        "challenge",
        oneOf(["both", "http-01", "tls-alpn-01"]),
        "both",
        'How the CA checks control of a name: "http-01" (port 80, [proxy] redirect-http), "tls-alpn-01" (the TLS listener, port 443) or "both".',
        "restart",
      ),
      "eab-kid": optional(
        "eabKid",
        nonEmpty,
        "External account binding key id, for CAs that need one (ZeroSSL, Google); with eab-hmac-key.",
        "restart",
      ),
      "eab-hmac-key": shown(
        "${DOPROXY_EAB_HMAC_KEY}",
        optional(
          "eabHmacKey",
          { schema: z.string().transform((t) => t || undefined), type: "string" },
          "External account binding HMAC key (base64url) from the CA; never logged.",
          "restart",
        ),
      ),
      "key-encryption-key": shown(
        "${DOPROXY_KEY_ENCRYPTION_KEY}",
        optional(
          "keyEncryptionKey",
          {
            schema: z
              .string()
              .refine((t) => t === "" || t.length >= 16, { message: "expected at least 16 characters" })
              .transform((t) => t || undefined),
            type: "string",
            range: "at least 16 characters",
          },
          "When set, private keys in the inventory are encrypted with it (AES-256-GCM); take it from the environment; never logged.",
          "restart",
        ),
      ),
    },
    cors: {
      "allow-origins": key(
        "allowOrigins",
        { schema: z.array(origin), type: "array of origins or *" },
        [],
        'Origins allowed to call through doproxy ("https://app.example.com", or "*"); empty = CORS off.',
      ),
      "allow-methods": key(
        "allowMethods",
        {
          schema: z.array(z.string().regex(HEADER_NAME, { message: "expected a method name" })),
          type: "array of methods",
        },
        ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"],
        "Methods a preflight allows.",
      ),
      "allow-headers": key(
        "allowHeaders",
        { ...headerList, schema: headerList.schema.transform((list) => list.map((h) => h.toLowerCase())) },
        [],
        'Request headers allowed beyond the CORS-safelisted ones ("*" without credentials).',
      ),
      "expose-headers": key("exposeHeaders", headerList, [], "Response headers scripts may read."),
      "allow-credentials": key(
        "allowCredentials",
        bool,
        false,
        'Allow cookies and Authorization (not with "*").',
      ),
      "max-age": key(
        "maxAgeMs",
        duration(0, DAY_MS),
        "10m",
        "How long browsers may cache a preflight answer.",
      ),
    },
  } satisfies Record<string, Keys>;
}

/** The whole file: each section's table, its cross-key rules, then its runtime shape. */
export function configSchema(baseDir: string = process.cwd()) {
  const keys = configKeys(baseDir);

  const proxy = table(keys.proxy)
    .refine((p) => (p["tls-cert"] === undefined) === (p["tls-key"] === undefined), {
      message: "tls-cert and tls-key must be set together",
      path: ["tls-cert"],
    })
    .transform(renamed(keys.proxy))
    .transform(({ stickyMode, stickyCookie, stickyMaxAgeMs, stickyHashKey, tlsCert, tlsKey, ...rest }) => ({
      ...rest,
      sticky: {
        mode: stickyMode,
        cookieName: stickyCookie,
        cookieMaxAgeMs: stickyMaxAgeMs,
        hashKey: stickyHashKey,
      },
      tls: tlsCert && tlsKey ? { certFile: tlsCert, keyFile: tlsKey } : undefined,
    }));

  const health = table(keys.health)
    // A value that failed its own check is reported there, not again here.
    .refine(
      (h) => !bothNumbers(h["eject-time"], h["max-eject-time"]) || h["eject-time"] <= h["max-eject-time"],
      {
        message: "eject-time must not be longer than max-eject-time",
        path: ["eject-time"],
      },
    )
    .transform(renamed(keys.health));

  const inventory = table(keys.inventory)
    .refine(
      (i) =>
        !bothNumbers(i["raw-retention"], i["minute-retention"], i.retention) ||
        (i["raw-retention"] <= i["minute-retention"] && i["minute-retention"] <= i.retention),
      {
        message:
          "expected raw-retention <= minute-retention <= retention (each tier is rolled into the next)",
        path: ["raw-retention"],
      },
    )
    .transform(renamed(keys.inventory));

  const admin = table(keys.admin).transform(renamed(keys.admin));
  const digitalocean = table(keys.digitalocean).transform(renamed(keys.digitalocean));
  const autoscale = table(keys.autoscale)
    .refine((a) => a.min <= a.max, { message: "min must not be greater than max", path: ["min"] })
    .transform(renamed(keys.autoscale));

  const rateLimit = table(keys["rate-limit"])
    .transform(renamed(keys["rate-limit"]))
    // Unset, the burst is one window's requests.
    .transform(({ burst, ...rest }) => ({ ...rest, burst: burst ?? Math.max(1, rest.requests) }));

  const cors = table(keys.cors)
    // The Fetch standard ignores "*" on a credentialed request: the browser would refuse every one.
    .refine(
      (c) =>
        !c["allow-credentials"] ||
        ![c["allow-origins"], c["allow-headers"], c["expose-headers"]].some((list) => list.includes("*")),
      {
        message:
          'allow-credentials = true cannot be combined with "*" (browsers ignore the wildcard on credentialed requests): list the origins and headers',
        path: ["allow-credentials"],
      },
    )
    .transform(renamed(keys.cors));

  const tls = table(keys.tls)
    .refine((t) => !t.acme || t.domains.length > 0, {
      message: "acme = true needs domains: the names the certificate covers",
      path: ["domains"],
    })
    .refine((t) => (t["eab-kid"] === undefined) === !t["eab-hmac-key"], {
      message: "eab-kid and eab-hmac-key must be set together",
      path: ["eab-kid"],
    })
    .transform(renamed(keys.tls));

  return (
    z
      .strictObject({
        proxy: proxy.prefault({}),
        health: health.prefault({}),
        inventory: inventory.prefault({}),
        admin: admin.prefault({}),
        digitalocean: digitalocean.prefault({}),
        autoscale: autoscale.prefault({}),
        "rate-limit": rateLimit.prefault({}),
        cors: cors.prefault({}),
        tls: tls.prefault({}),
      })
      // The admin exposure rule lives in the schema, so `config check`, the start of `serve` and
      // every hot reload refuse the same thing: a reload that would open /metrics and /api/* to the
      // network is a broken edit, and the last good configuration stays.
      .refine((f) => f.proxy.redirectHttp === undefined || f.proxy.tls !== undefined || f.tls.acme, {
        message:
          "redirect-http needs tls-cert and tls-key (or [tls] acme = true): it redirects plain HTTP to the HTTPS listener",
        path: ["proxy", "redirect-http"],
      })
      .refine((f) => !(f.tls.acme && f.proxy.tls), {
        message: "[tls] acme = true and [proxy] tls-cert both name the certificate: keep one",
        path: ["tls", "acme"],
      })
      .refine((f) => !f.tls.acme || f.tls.challenge === "tls-alpn-01" || f.proxy.redirectHttp !== undefined, {
        message:
          'challenge "http-01" (or "both") needs [proxy] redirect-http (e.g. "0.0.0.0:80"): the CA asks on port 80',
        path: ["tls", "challenge"],
      })
      .refine((f) => !adminNeedsToken(f.admin.listen) || Boolean(f.admin.token), {
        message:
          'a non-loopback admin listener needs [admin] token (e.g. token = "${DOPROXY_ADMIN_TOKEN}"), or listen on 127.0.0.1',
        path: ["admin", "listen"],
      })
      // Sections under their runtime names, in the order the program has always listed them.
      .transform(({ proxy, health, "rate-limit": rateLimit, cors, ...rest }) => ({
        proxy,
        health,
        rateLimit,
        cors,
        ...rest,
      }))
  );
}

/** What the file yields, in the units the program works in (milliseconds, HostPort, absolute paths). */
export type FileConfig = z.output<ReturnType<typeof configSchema>>;
