import { availableParallelism } from "node:os";
import path from "node:path";
import { type HostPort, parseHostPort } from "../util/address.js";
import { parseDuration } from "../util/duration.js";
import type { ConfigFile } from "./schema.js";

/** The validated configuration, in the units the program works in (milliseconds, HostPort). */
export interface Config {
  /** Absolute path of the file this came from, or undefined for the built-in defaults. */
  file: string | undefined;
  proxy: {
    listen: HostPort;
    strategy: "round-robin" | "least-connections" | "latency";
    /** Processes that proxy; 1 = this process alone ("auto" is resolved to the core count). */
    workers: number;
    xForwardedFor: boolean;
    retries: number;
    connectTimeoutMs: number;
    timeoutMs: number;
    /** A request body that sends nothing for this long is cut with 408. */
    bodyIdleTimeoutMs: number;
    /** Request headers must arrive within this (slowloris); else 408. */
    headerTimeoutMs: number;
    drainTimeoutMs: number;
    maxHeaderBytes: number;
    maxTargetLength: number;
    /** Requests one client address may have in flight at once; 0 = no cap. */
    maxInFlightPerClient: number;
    /** Peers whose X-Forwarded-For names the client (CIDR blocks, addresses, proxy-addr names). */
    trustedProxies: string[];
    /** A backend new in rotation ramps up to its full weight over this long; 0 = at once. */
    slowStartMs: number;
    sticky: StickySettings;
    tls: { certFile: string; keyFile: string } | undefined;
    /** A plain-HTTP listener that redirects to the HTTPS one; undefined = none. */
    redirectHttp: HostPort | undefined;
  };
  health: {
    path: string;
    intervalMs: number;
    timeoutMs: number;
    healthyAfter: number;
    unhealthyAfter: number;
    /** A joining droplet that has not passed its checks by then becomes unhealthy (and is replaced). */
    joinTimeoutMs: number;
    /** 5xx answers or connect failures in a row that eject a backend; 0 = no outlier ejection. */
    ejectAfter: number;
    ejectTimeMs: number;
    maxEjectTimeMs: number;
    maxEjectedPercent: number;
  };
  rateLimit: RateLimitSettings;
  cors: CorsSettings;
  inventory: {
    /** The SQLite file, used when `url` is not set. */
    path: string;
    /** PostgreSQL connection URL (with its password): never logged, shown only through redactUrl. */
    url: string | undefined;
    flushIntervalMs: number;
    /** Raw per-interval samples are kept this long, per-minute rows minuteRetentionMs. */
    rawRetentionMs: number;
    minuteRetentionMs: number;
    /** Per-hour rows and events. */
    retentionMs: number;
  };
  admin: { listen: HostPort; token: string | undefined; allowedHosts: string[] };
  digitalocean: {
    token: string;
    /** Where the token comes from, for error messages; never the token itself. */
    tokenSource: string;
    apiUrl: string;
    region: string;
    size: string;
    image: string;
    sshKeys: Array<string | number>;
    tags: string[];
    namePrefix: string;
    userDataFile: string;
    vpcUuid: string;
    backendPort: number;
    usePrivateIp: boolean;
    /** A droplet not active this long after its create is destroyed (and replaced). */
    bootTimeoutMs: number;
    /** API requests an hour doproxy allows itself (polling slows down as it nears them). */
    apiBudgetPerHour: number;
    /** Weight of droplets doproxy creates or adopts, or "vcpus" for their size's vCPU count. */
    weight: number | "vcpus";
    /** A reserved IP the serve holding the reserved-ip lease keeps on its own droplet. */
    reservedIp: string | undefined;
    /** This proxy's own droplet id, or "metadata" to ask the droplet metadata service. */
    dropletId: number | "metadata";
  };
  autoscale: {
    enabled: boolean;
    dryRun: boolean;
    min: number;
    max: number;
    evaluate: string;
    scaleUpLatencyMs: number;
    scaleUpConnections: number;
    scaleUpAfterMs: number;
    scaleUpCooldownMs: number;
    scaleDownLatencyMs: number;
    scaleDownConnections: number;
    scaleDownAfterMs: number;
    scaleDownCooldownMs: number;
    replaceUnhealthyAfterMs: number;
    /** Consecutive replacements that never became healthy before replacing stops. */
    replacementAttempts: number;
    /** Budget cap in US dollars per hour for the pool's droplets; undefined = no cap. */
    maxHourlyCost: number | undefined;
    schedule: Array<{ cron: string; min: number }>;
    /** Predictive floors from the load recorded at the same moment of previous periods. */
    predictive: boolean;
    predictivePeriodMs: number;
    predictivePeriods: number;
    /** Added to the learned boot time: how far ahead a predicted floor is raised. */
    predictiveMarginMs: number;
  };
}

/** What identifies a client: its address (behind trusted proxies), or a request header. */
export type ClientKey = { kind: "ip" } | { kind: "header"; name: string };

export interface StickySettings {
  mode: "none" | "cookie" | "hash";
  cookieName: string;
  /** 0 = a session cookie. */
  cookieMaxAgeMs: number;
  hashKey: ClientKey;
}

export interface RateLimitSettings {
  /** 0 = no rate limit. */
  requests: number;
  perMs: number;
  burst: number;
  key: ClientKey;
  maxKeys: number;
}

export interface CorsSettings {
  /** Empty: CORS is off. */
  allowOrigins: string[];
  allowMethods: string[];
  allowHeaders: string[];
  exposeHeaders: string[];
  allowCredentials: boolean;
  maxAgeMs: number;
}

function clientKey(text: string): ClientKey {
  return text === "ip"
    ? { kind: "ip" }
    : { kind: "header", name: text.slice("header:".length).toLowerCase() };
}

const ms = (text: string): number => parseDuration(text) as number;
const hp = (text: string): HostPort => parseHostPort(text) as HostPort;

/** Relative file paths in the configuration are relative to the configuration file's folder. */
function resolveFrom(baseDir: string, file: string): string {
  return path.isAbsolute(file) ? file : path.resolve(baseDir, file);
}

export function normalizeConfig(raw: ConfigFile, file: string | undefined): Config {
  const baseDir = file ? path.dirname(file) : process.cwd();
  const { proxy, health, inventory, admin, digitalocean: dig, autoscale: auto, cors } = raw;
  const limit = raw["rate-limit"];
  return {
    file,
    proxy: {
      listen: hp(proxy.listen),
      strategy: proxy.strategy,
      workers: proxy.workers === "auto" ? Math.max(1, Math.min(64, availableParallelism())) : proxy.workers,
      xForwardedFor: proxy["x-forwarded-for"],
      retries: proxy.retries,
      connectTimeoutMs: ms(proxy["connect-timeout"]),
      timeoutMs: ms(proxy.timeout),
      bodyIdleTimeoutMs: ms(proxy["body-idle-timeout"]),
      headerTimeoutMs: ms(proxy["header-timeout"]),
      drainTimeoutMs: ms(proxy["drain-timeout"]),
      maxHeaderBytes: proxy["max-header-bytes"],
      maxTargetLength: proxy["max-target-length"],
      maxInFlightPerClient: proxy["max-in-flight-per-client"],
      trustedProxies: proxy["trusted-proxies"],
      slowStartMs: ms(proxy["slow-start"]),
      sticky: {
        mode: proxy.sticky,
        cookieName: proxy["sticky-cookie"],
        cookieMaxAgeMs: ms(proxy["sticky-max-age"]),
        hashKey: clientKey(proxy["sticky-hash-key"]),
      },
      redirectHttp: proxy["redirect-http"] ? hp(proxy["redirect-http"]) : undefined,
      tls:
        proxy["tls-cert"] && proxy["tls-key"]
          ? {
              certFile: resolveFrom(baseDir, proxy["tls-cert"]),
              keyFile: resolveFrom(baseDir, proxy["tls-key"]),
            }
          : undefined,
    },
    health: {
      path: health.path,
      intervalMs: ms(health.interval),
      timeoutMs: ms(health.timeout),
      healthyAfter: health["healthy-after"],
      unhealthyAfter: health["unhealthy-after"],
      joinTimeoutMs: ms(health["join-timeout"]),
      ejectAfter: health["eject-after"],
      ejectTimeMs: ms(health["eject-time"]),
      maxEjectTimeMs: ms(health["max-eject-time"]),
      maxEjectedPercent: health["max-ejected-percent"],
    },
    rateLimit: {
      requests: limit.requests,
      perMs: ms(limit.per),
      burst: limit.burst ?? Math.max(1, limit.requests),
      key: clientKey(limit.key),
      maxKeys: limit["max-keys"],
    },
    cors: {
      allowOrigins: cors["allow-origins"],
      allowMethods: cors["allow-methods"],
      allowHeaders: cors["allow-headers"].map((h) => h.toLowerCase()),
      exposeHeaders: cors["expose-headers"],
      allowCredentials: cors["allow-credentials"],
      maxAgeMs: ms(cors["max-age"]),
    },
    inventory: {
      path: resolveFrom(baseDir, inventory.path),
      url: inventory.url,
      flushIntervalMs: ms(inventory["flush-interval"]),
      rawRetentionMs: ms(inventory["raw-retention"]),
      minuteRetentionMs: ms(inventory["minute-retention"]),
      retentionMs: ms(inventory.retention),
    },
    admin: {
      listen: hp(admin.listen),
      token: admin.token || undefined,
      allowedHosts: admin["allowed-hosts"].map((host) => host.toLowerCase()),
    },
    digitalocean: {
      token: dig.token,
      tokenSource: "[digitalocean] token",
      apiUrl: dig["api-url"].replace(/\/+$/, ""),
      region: dig.region,
      size: dig.size,
      image: dig.image,
      sshKeys: dig["ssh-keys"],
      tags: dig.tags,
      namePrefix: dig["name-prefix"],
      userDataFile: dig["user-data-file"] ? resolveFrom(baseDir, dig["user-data-file"]) : "",
      vpcUuid: dig["vpc-uuid"],
      backendPort: dig["backend-port"],
      usePrivateIp: dig["use-private-ip"],
      bootTimeoutMs: ms(dig["boot-timeout"]),
      apiBudgetPerHour: dig["api-budget"],
      weight: dig.weight,
      reservedIp: dig["reserved-ip"],
      dropletId: dig["droplet-id"],
    },
    autoscale: {
      enabled: auto.enabled,
      dryRun: auto["dry-run"],
      min: auto.min,
      max: auto.max,
      evaluate: auto.evaluate,
      scaleUpLatencyMs: ms(auto["scale-up-latency"]),
      scaleUpConnections: auto["scale-up-connections"],
      scaleUpAfterMs: ms(auto["scale-up-after"]),
      scaleUpCooldownMs: ms(auto["scale-up-cooldown"]),
      scaleDownLatencyMs: ms(auto["scale-down-latency"]),
      scaleDownConnections: auto["scale-down-connections"],
      scaleDownAfterMs: ms(auto["scale-down-after"]),
      scaleDownCooldownMs: ms(auto["scale-down-cooldown"]),
      replaceUnhealthyAfterMs: ms(auto["replace-unhealthy-after"]),
      replacementAttempts: auto["replacement-attempts"],
      maxHourlyCost: auto["max-hourly-cost"],
      schedule: auto.schedule,
      predictive: auto.predictive,
      predictivePeriodMs: ms(auto["predictive-period"]),
      predictivePeriods: auto["predictive-periods"],
      predictiveMarginMs: ms(auto["predictive-margin"]),
    },
  };
}
