import { z } from "zod";
import { isValidCron, isValidScheduleCron } from "../autoscale/schedule.js";
import { parseHostPort } from "../util/address.js";
import { parseDuration } from "../util/duration.js";

/**
 * The doproxy.toml contract (DESIGN.md): every key, its default and its validation.
 * Keys are kebab-case in TOML; `normalizeConfig` turns the parsed file into the camelCase `Config`
 * the rest of the program receives. Unknown keys are errors (strict objects).
 */

const duration = z.string().refine((text) => parseDuration(text) !== undefined, {
  message: 'expected a duration such as "250ms", "2s", "5m", "1h" or "7d"',
});
const positiveDuration = z.string().superRefine((text, ctx) => {
  const ms = parseDuration(text);
  if (ms === undefined)
    ctx.addIssue({
      code: "custom",
      message: 'expected a duration such as "250ms", "2s", "5m", "1h" or "7d"',
    });
  else if (ms <= 0) ctx.addIssue({ code: "custom", message: "expected a duration greater than zero" });
});
const hostPort = z.string().refine((text) => parseHostPort(text) !== undefined, {
  message: 'expected HOST:PORT such as "127.0.0.1:8080" or "[::1]:8080"',
});
const count = (min: number) => z.number().int({ message: "expected a whole number" }).min(min);

const proxySection = z
  .strictObject({
    listen: hostPort.default("0.0.0.0:8080"),
    strategy: z.enum(["round-robin", "least-connections", "latency"]).default("round-robin"),
    "x-forwarded-for": z.boolean().default(true),
    retries: count(0).max(10).default(1),
    "connect-timeout": positiveDuration.default("2s"),
    timeout: positiveDuration.default("60s"),
    "drain-timeout": duration.default("30s"),
    "tls-cert": z.string().min(1).optional(),
    "tls-key": z.string().min(1).optional(),
  })
  .refine((p) => (p["tls-cert"] === undefined) === (p["tls-key"] === undefined), {
    message: "tls-cert and tls-key must be set together",
    path: ["tls-cert"],
  });

const healthSection = z.strictObject({
  path: z.string().startsWith("/", { message: 'expected a path starting with "/"' }).default("/health"),
  interval: positiveDuration.default("1s"),
  timeout: positiveDuration.default("500ms"),
  "healthy-after": count(1).default(2),
  "unhealthy-after": count(1).default(3),
});

const inventorySection = z.strictObject({
  path: z.string().min(1).default("inventory/doproxy.db"),
  "flush-interval": positiveDuration.default("1s"),
  retention: positiveDuration.default("7d"),
});

const adminSection = z.strictObject({
  listen: hostPort.default("127.0.0.1:9090"),
  token: z.string().optional(),
});

const digitaloceanSection = z.strictObject({
  token: z.string().default(""),
  "api-url": z.url({ message: "expected an http(s) URL" }).default("https://api.digitalocean.com"),
  region: z.string().min(1).default("nyc3"),
  size: z.string().min(1).default("s-1vcpu-1gb"),
  image: z.string().min(1).default("ubuntu-24-04-x64"),
  "ssh-keys": z.array(z.union([z.string(), z.number().int()])).default([]),
  tags: z.array(z.string().min(1)).default(["doproxy"]),
  "name-prefix": z.string().default("doproxy-"),
  "user-data-file": z.string().default(""),
  "vpc-uuid": z.string().default(""),
  "backend-port": count(1).max(65535).default(8080),
  "use-private-ip": z.boolean().default(true),
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
    "scale-up-latency": positiveDuration.default("500ms"),
    "scale-up-connections": z.number().positive().default(50),
    "scale-up-after": duration.default("1m"),
    "scale-up-cooldown": duration.default("5m"),
    "scale-down-latency": positiveDuration.default("150ms"),
    "scale-down-connections": z.number().nonnegative().default(10),
    "scale-down-after": duration.default("10m"),
    "scale-down-cooldown": duration.default("15m"),
    "replace-unhealthy-after": duration.default("3m"),
    // US dollars per hour for the whole pool; absent means no cap.
    "max-hourly-cost": z.number().positive().max(1_000_000).optional(),
    schedule: z.array(scheduleEntry).default([]),
  })
  .refine((a) => a.min <= a.max, { message: "min must not be greater than max", path: ["min"] });

export const fileSchema = z.strictObject({
  proxy: proxySection.default(() => proxySection.parse({})),
  health: healthSection.default(() => healthSection.parse({})),
  inventory: inventorySection.default(() => inventorySection.parse({})),
  admin: adminSection.default(() => adminSection.parse({})),
  digitalocean: digitaloceanSection.default(() => digitaloceanSection.parse({})),
  autoscale: autoscaleSection.default(() => autoscaleSection.parse({})),
});

export type ConfigFile = z.infer<typeof fileSchema>;
