import proxyAddr from "proxy-addr";
import { z } from "zod";
import { isLoopback, parseHostPort } from "../util/address.js";
import { formatDuration, parseDuration } from "../util/duration.js";
import { isValidCron, isValidScheduleCron } from "./cron.js";
import { isValidDropletNamePrefix, isValidHealthPath, isValidTag } from "./digitalocean-rules.js";

/**
 * The doproxy.toml contract (DESIGN.md): every key, its default and its validation.
 * Keys are kebab-case in TOML; `normalizeConfig` turns the parsed file into the camelCase `Config`
 * the rest of the program receives. Unknown keys are errors (strict objects).
 */

/** The longest delay a Node.js timer honours (2^31 − 1 ms, about 24.8 days); longer ones fire at once. */
export const MAX_TIMER_MS = 2_147_483_647;
const DAY_MS = 86_400_000;
const DURATION_HINT = 'expected a duration such as "250ms", "2s", "5m", "1h" or "7d"';

/**
 * A duration string whose value lies in [minMs, maxMs]: every duration the runtime turns into a
 * timer is bounded by MAX_TIMER_MS, so `config check` rejects what `serve` could not honour.
 */
const durationIn = (minMs: number, maxMs: number) =>
  z.string().superRefine((text, ctx) => {
    const ms = parseDuration(text);
    if (ms === undefined) ctx.addIssue({ code: "custom", message: DURATION_HINT });
    else if (ms < minMs || ms > maxMs)
      ctx.addIssue({
        code: "custom",
        message: `expected a duration from ${formatDuration(minMs)} to ${maxMs === MAX_TIMER_MS ? "24d (the longest a timer can wait)" : formatDuration(maxMs)}`,
      });
  });
/** A timer delay: at least 1 ms, at most what a timer can wait. */
const timerDuration = durationIn(1, MAX_TIMER_MS);
/** A window or a cooldown compared against timestamps (may be zero; never a timer of its own). */
const windowDuration = durationIn(0, 365 * DAY_MS);
const hostPort = z.string().refine((text) => parseHostPort(text) !== undefined, {
  message: 'expected HOST:PORT with an IP address or host name, such as "127.0.0.1:8080" or "[::1]:8080"',
});
const count = (min: number) => z.number().int({ message: "expected a whole number" }).min(min);
/** An HTTP field name (RFC 9110 token), as a header-keyed policy names it. */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** "ip", or "header:Name": what identifies a client for rate limits and sticky hashing. */
const clientKey = z
  .string()
  .refine(
    (text) => text === "ip" || (text.startsWith("header:") && HEADER_NAME.test(text.slice("header:".length))),
    { message: 'expected "ip" or "header:NAME" such as "header:X-Api-Key"' },
  );
/** CIDR blocks, addresses, or proxy-addr's names (loopback, linklocal, uniquelocal). */
const trustedProxies = z.array(z.string()).superRefine((list, ctx) => {
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
});
/** A cookie name (RFC 6265 token). */
const cookieName = z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, {
  message: "expected a cookie name: letters, digits and !#$%&'*+.^_`|~-",
});

const proxySection = z
  .strictObject({
    listen: hostPort.default("0.0.0.0:8080"),
    strategy: z.enum(["round-robin", "least-connections", "latency"]).default("round-robin"),
    // Processes that proxy (node:cluster): 1, a number, or "auto" for one per core.
    workers: z
      .union([z.number(), z.literal("auto")], { message: 'expected a whole number from 1 to 64, or "auto"' })
      .refine((w) => w === "auto" || (Number.isInteger(w) && w >= 1 && w <= 64), {
        message: 'expected a whole number from 1 to 64, or "auto"',
      })
      .default(1),
    "x-forwarded-for": z.boolean().default(true),
    retries: count(0).max(10).default(1),
    "connect-timeout": timerDuration.default("2s"),
    timeout: timerDuration.default("60s"),
    "body-idle-timeout": timerDuration.default("60s"),
    "header-timeout": durationIn(100, MAX_TIMER_MS).default("30s"),
    "drain-timeout": durationIn(0, MAX_TIMER_MS).default("30s"),
    "max-header-bytes": count(1024).max(1_048_576).default(16_384),
    "max-target-length": count(16).max(1_048_576).default(8192),
    "max-in-flight-per-client": count(0).max(1_000_000).default(0),
    // Peers whose X-Forwarded-For is believed (a load balancer in front); everyone else is the
    // socket's address, whatever they send.
    "trusted-proxies": trustedProxies.default([]),
    // A backend that just came into rotation takes a growing share of its weight over this long.
    "slow-start": durationIn(0, 3_600_000).default("0s"),
    sticky: z.enum(["none", "cookie", "hash"]).default("none"),
    "sticky-cookie": cookieName.default("doproxy_backend"),
    // 0s: a session cookie (gone when the browser closes).
    "sticky-max-age": durationIn(0, 400 * DAY_MS).default("0s"),
    "sticky-hash-key": clientKey.default("ip"),
    "tls-cert": z.string().min(1).optional(),
    "tls-key": z.string().min(1).optional(),
    // A second, plain-HTTP listener that redirects every request to the HTTPS one.
    "redirect-http": hostPort.optional(),
  })
  .refine((p) => (p["tls-cert"] === undefined) === (p["tls-key"] === undefined), {
    message: "tls-cert and tls-key must be set together",
    path: ["tls-cert"],
  })
  .refine((p) => p["redirect-http"] === undefined || p["tls-cert"] !== undefined, {
    message: "redirect-http needs tls-cert and tls-key: it redirects plain HTTP to the HTTPS listener",
    path: ["redirect-http"],
  });

const healthSection = z
  .strictObject({
    path: z
      .string()
      .refine(isValidHealthPath, {
        message: 'expected a path starting with "/" without spaces or control characters, such as "/health"',
      })
      .default("/health"),
    interval: durationIn(10, MAX_TIMER_MS).default("1s"),
    timeout: timerDuration.default("500ms"),
    "healthy-after": count(1).default(2),
    "unhealthy-after": count(1).default(3),
    "join-timeout": timerDuration.default("5m"),
    // Outlier ejection: this many 5xx answers or connect failures in a row take a backend out of
    // rotation even while its health path passes; 0 = off.
    "eject-after": count(0).max(10_000).default(0),
    "eject-time": durationIn(100, 3_600_000).default("30s"),
    "max-eject-time": durationIn(100, MAX_TIMER_MS).default("5m"),
    "max-ejected-percent": count(0).max(100).default(50),
  })
  .refine(
    (h) =>
      parseDuration(h["eject-time"]) === undefined ||
      parseDuration(h["max-eject-time"]) === undefined ||
      (parseDuration(h["eject-time"]) as number) <= (parseDuration(h["max-eject-time"]) as number),
    {
      message: "eject-time must not be longer than max-eject-time",
      path: ["eject-time"],
    },
  );

const rateLimitSection = z.strictObject({
  // 0 = no rate limit.
  requests: count(0).max(1_000_000_000).default(0),
  per: durationIn(1, 31 * DAY_MS).default("1s"),
  // Requests a quiet client may send at once; default: `requests`.
  burst: count(1).max(1_000_000_000).optional(),
  key: clientKey.default("ip"),
  // Clients remembered at once (least recently seen forgotten first): bounds memory under a flood.
  "max-keys": count(100).max(10_000_000).default(100_000),
});

/** "*" or an origin as browsers send it: scheme://host[:port], nothing else. */
const origin = z.string().refine(
  (text) => {
    if (text === "*") return true;
    try {
      const url = new URL(text);
      return url.origin === text && url.origin !== "null";
    } catch {
      return false;
    }
  },
  { message: 'expected "*" or an origin such as "https://app.example.com" (scheme, host, port; no path)' },
);
const corsSection = z
  .strictObject({
    // Empty: doproxy adds no CORS headers and forwards preflights like any request.
    "allow-origins": z.array(origin).default([]),
    "allow-methods": z
      .array(z.string().regex(HEADER_NAME, { message: "expected a method name" }))
      .default(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]),
    "allow-headers": z
      .array(
        z.string().regex(/^(\*|[!#$%&'*+.^_`|~0-9A-Za-z-]+)$/, { message: "expected a header name or *" }),
      )
      .default([]),
    "expose-headers": z
      .array(
        z.string().regex(/^(\*|[!#$%&'*+.^_`|~0-9A-Za-z-]+)$/, { message: "expected a header name or *" }),
      )
      .default([]),
    "allow-credentials": z.boolean().default(false),
    "max-age": durationIn(0, DAY_MS).default("10m"),
  })
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
  );

const inventorySection = z
  .strictObject({
    path: z.string().min(1).default("inventory/doproxy.db"),
    // PostgreSQL instead of the SQLite file, for several proxies sharing one pool. Interpolate the
    // password (url = "postgres://doproxy:${DOPROXY_DB_PASSWORD}@host:25060/doproxy?sslmode=verify-full").
    url: z
      .string()
      .regex(/^postgres(ql)?:\/\/\S+$/, {
        message: 'expected a PostgreSQL URL such as "postgres://user:${PASSWORD}@host:5432/doproxy"',
      })
      .optional(),
    "flush-interval": durationIn(10, 3_600_000).default("1s"),
    // Raw per-interval samples, then per-minute rows, then per-hour rows (and events): each tier
    // is kept this long.
    "raw-retention": durationIn(600_000, 3650 * DAY_MS).default("6h"),
    "minute-retention": durationIn(3_600_000, 3650 * DAY_MS).default("2d"),
    retention: durationIn(60_000, 3650 * DAY_MS).default("7d"),
  })
  .refine(
    (i) => {
      const [raw, minute, hour] = [i["raw-retention"], i["minute-retention"], i.retention].map(parseDuration);
      return (
        raw === undefined || minute === undefined || hour === undefined || (raw <= minute && minute <= hour)
      );
    },
    {
      message: "expected raw-retention <= minute-retention <= retention (each tier is rolled into the next)",
      path: ["raw-retention"],
    },
  );

const adminSection = z.strictObject({
  listen: hostPort.default("127.0.0.1:9090"),
  token: z.string().optional(),
  /** Host header values the admin listener answers besides its own address and localhost (DNS rebinding). */
  "allowed-hosts": z.array(z.string().min(1)).default([]),
});

const digitaloceanSection = z.strictObject({
  token: z.string().default(""),
  "api-url": z
    .url({
      protocol: /^https?$/,
      message: 'expected an http:// or https:// URL such as "https://api.digitalocean.com"',
    })
    .default("https://api.digitalocean.com"),
  region: z.string().min(1).default("nyc3"),
  size: z.string().min(1).default("s-1vcpu-1gb"),
  image: z.string().min(1).default("ubuntu-24-04-x64"),
  "ssh-keys": z.array(z.union([z.string(), z.number().int()])).default([]),
  tags: z
    .array(
      z.string().refine(isValidTag, {
        message: "expected a DigitalOcean tag: 1 to 255 letters, digits, '_', '-' or ':'",
      }),
    )
    .min(1, { message: "expected at least one tag: the pool's droplets are found by it" })
    .default(["doproxy"]),
  "name-prefix": z
    .string()
    .refine(isValidDropletNamePrefix, {
      message:
        "expected a droplet name prefix: letters, digits, '.' and '-', starting with a letter or digit, at most 200 characters",
    })
    .default("doproxy-"),
  "user-data-file": z.string().default(""),
  "vpc-uuid": z.string().default(""),
  "backend-port": count(1).max(65535).default(8080),
  "use-private-ip": z.boolean().default(false),
  "boot-timeout": durationIn(1000, MAX_TIMER_MS).default("5m"),
  // API requests an hour doproxy allows itself with this token (DigitalOcean allows 5,000 an hour
  // per account, shared with every other tool using it).
  "api-budget": count(60).max(5000).default(1000),
  // Weight of each droplet doproxy creates or adopts: a number, or "vcpus" (its size's vCPUs).
  weight: z
    .union([z.number(), z.literal("vcpus")], {
      message: 'expected a whole number from 1 to 1000, or "vcpus"',
    })
    .refine((w) => w === "vcpus" || (Number.isInteger(w) && w >= 1 && w <= 1000), {
      message: 'expected a whole number from 1 to 1000, or "vcpus"',
    })
    .default(1),
  // A reserved IP that follows the serve holding the reserved-ip lease (failover for clients).
  "reserved-ip": z.ipv4({ message: 'expected an IPv4 address such as "203.0.113.10"' }).optional(),
  // This proxy's own droplet, to which it assigns the reserved IP; "metadata" asks the droplet
  // metadata service (http://169.254.169.254/metadata/v1/id) at start.
  "droplet-id": z
    .union([z.number(), z.literal("metadata")], {
      message: 'expected a droplet id (a whole number) or "metadata"',
    })
    .refine((id) => id === "metadata" || (Number.isInteger(id) && id > 0), {
      message: 'expected a droplet id (a whole number) or "metadata"',
    })
    .default("metadata"),
});

const scheduleEntry = z.strictObject({
  cron: z
    .string()
    .refine(isValidScheduleCron, { message: 'expected a cron expression such as "0 8 * * 1-5"' }),
  min: count(0),
});

const autoscaleSection = z
  .strictObject({
    enabled: z.boolean().default(false),
    "dry-run": z.boolean().default(false),
    min: count(0).default(1),
    max: count(1).default(5),
    evaluate: z
      .string()
      .refine(isValidCron, { message: 'expected a node-cron expression such as "*/5 * * * * *"' })
      .default("*/5 * * * * *"),
    "scale-up-latency": timerDuration.default("500ms"),
    "scale-up-connections": z.number().positive().default(50),
    "scale-up-after": windowDuration.default("1m"),
    "scale-up-cooldown": windowDuration.default("5m"),
    "scale-down-latency": timerDuration.default("150ms"),
    "scale-down-connections": z.number().nonnegative().default(10),
    "scale-down-after": windowDuration.default("10m"),
    "scale-down-cooldown": windowDuration.default("15m"),
    "replace-unhealthy-after": windowDuration.default("3m"),
    // Replacements in a row that never became healthy before replacing stops (replacements-failing).
    "replacement-attempts": count(1).max(100).default(3),
    // US dollars per hour for the whole pool; absent means no cap.
    "max-hourly-cost": z.number().positive().max(1_000_000).optional(),
    schedule: z.array(scheduleEntry).default([]),
    // Predictive floors: the load recorded at the same moment of the previous periods.
    predictive: z.boolean().default(false),
    "predictive-period": durationIn(60_000, 28 * DAY_MS).default("24h"),
    "predictive-periods": count(1).max(28).default(7),
    "predictive-margin": windowDuration.default("2m"),
  })
  .refine((a) => a.min <= a.max, { message: "min must not be greater than max", path: ["min"] });

/** True when an admin listener on this address would need a token (anything but loopback). */
function adminNeedsToken(listen: string): boolean {
  const address = parseHostPort(listen);
  return address !== undefined && !isLoopback(address.host);
}

export const fileSchema = z
  .strictObject({
    proxy: proxySection.default(() => proxySection.parse({})),
    health: healthSection.default(() => healthSection.parse({})),
    inventory: inventorySection.default(() => inventorySection.parse({})),
    admin: adminSection.default(() => adminSection.parse({})),
    digitalocean: digitaloceanSection.default(() => digitaloceanSection.parse({})),
    autoscale: autoscaleSection.default(() => autoscaleSection.parse({})),
    "rate-limit": rateLimitSection.default(() => rateLimitSection.parse({})),
    cors: corsSection.default(() => corsSection.parse({})),
  })
  // The admin exposure rule lives in the schema, so `config check`, the start of `serve` and every
  // hot reload refuse the same thing: a reload that would open /metrics and /api/* to the network
  // is a broken edit, and the last good configuration stays.
  .refine((file) => !adminNeedsToken(file.admin.listen) || Boolean(file.admin.token), {
    message:
      'a non-loopback admin listener needs [admin] token (e.g. token = "${DOPROXY_ADMIN_TOKEN}"), or listen on 127.0.0.1',
    path: ["admin", "listen"],
  });

export type ConfigFile = z.infer<typeof fileSchema>;
