import type { Logger } from "../log.js";
import { type Answer, ApiFailure } from "./answer.js";
import { FaultInjector, type Faults } from "./faults.js";
import { RateLimiter } from "./ratelimit.js";
import { SimReservedIps } from "./reserved-ips.js";
import { ApiSpec } from "./spec.js";
import { SimState } from "./state.js";

export interface SimOptions {
  /** When set, every /v2 request needs "Authorization: Bearer <token>". */
  token?: string;
  bootTimeMs: number;
  capacity: number;
  serviceTimeMs: number;
  backendPort: number;
  healthPath: string;
  perMinute: number;
  perHour: number;
  dropletLimit: number;
  faults?: Partial<Faults>;
}

/** A /v2 request as a resource sees it: its path without a trailing slash, its parsed JSON body. */
export interface ApiRequest {
  method: string;
  path: string;
  url: URL;
  body: unknown;
}

/** A resource's answer to a request, or undefined when the request is not one of its own. */
export type Route = (request: ApiRequest) => Answer | undefined | Promise<Answer | undefined>;

/**
 * One resource of the API (droplets, tags, ...): given the simulator, its route. State only the
 * resource uses lives in the closure; a new resource is a file in resources/ and a line in router.ts.
 */
export type Resource = (sim: SimContext) => Route;

/** What every resource shares: the droplets, the API document, the faults in force and paging. */
export class SimContext {
  readonly state: SimState;
  readonly spec = new ApiSpec();
  readonly injector: FaultInjector;
  readonly limiter: RateLimiter;
  readonly reservedIps: SimReservedIps;

  constructor(
    readonly options: SimOptions,
    log?: Logger,
  ) {
    this.state = new SimState(
      { capacity: options.capacity, serviceTimeMs: options.serviceTimeMs },
      options.bootTimeMs,
      options.backendPort,
      options.healthPath,
      (d) =>
        log?.info(
          { id: d.id, name: d.name, address: `${d.privateIp}:${options.backendPort}` },
          "droplet booted",
        ),
    );
    this.reservedIps = new SimReservedIps(
      this.state,
      this.spec,
      (status, message) => new ApiFailure(status, message),
      (url, key, items) => this.page(url, key, items),
    );
    this.injector = new FaultInjector(options.faults);
    this.reservedIps.pendingConflict = () => this.injector.takePendingConflict();
    this.state.privateUnreachable = this.faults.privateUnreachable;
    this.state.listLagMs = this.faults.listLagMs;
    this.state.deleteLagMs = this.faults.deleteLagMs;
    this.limiter = new RateLimiter(options.perMinute, options.perHour);
  }

  /** The faults in force (changed in place by POST /_sim/faults). */
  get faults(): Faults {
    return this.injector.faults;
  }

  /** Rejects query parameters the spec does not allow (per_page above 200, page 0 ...). */
  checkQuery(method: string, specPath: string, url: URL): void {
    const allowed = this.spec.queryParameters(method, specPath);
    for (const [name, value] of url.searchParams) {
      const schema = allowed.get(name);
      if (!schema) continue;
      if (schema.type === "integer") {
        const n = Number(value);
        const min = schema.minimum as number | undefined;
        const max = schema.maximum as number | undefined;
        if (!Number.isInteger(n) || (min !== undefined && n < min) || (max !== undefined && n > max)) {
          throw new ApiFailure(
            400,
            `${name} must be an integer${min !== undefined ? ` >= ${min}` : ""}${max !== undefined ? ` and <= ${max}` : ""}`,
          );
        }
      }
    }
  }

  /** Pages a list the way the API does: page/per_page (default 20, at most 200), links.pages and meta.total. */
  page(url: URL, key: string, items: unknown[]): Record<string, unknown> {
    const perPage = Number(url.searchParams.get("per_page") ?? 20);
    const page = Number(url.searchParams.get("page") ?? 1);
    const last = Math.max(1, Math.ceil(items.length / perPage));
    const link = (n: number) => {
      const target = new URL(url.toString());
      target.searchParams.set("page", String(n));
      target.searchParams.set("per_page", String(perPage));
      return target.toString();
    };
    const pages: Record<string, string> = {};
    if (page > 1) {
      pages.first = link(1);
      pages.prev = link(page - 1);
    }
    if (page < last) {
      pages.next = link(page + 1);
      pages.last = link(last);
    }
    // A fault: each page after the first sees one more phantom change before it (offset paging).
    const start = Math.max(0, (page - 1) * perPage + this.injector.pageShift(page));
    return {
      [key]: items.slice(start, start + perPage),
      links: Object.keys(pages).length ? { pages } : {},
      meta: { total: items.length },
    };
  }

  /** A 200 with one page of a list. */
  list(url: URL, key: string, items: unknown[]): Answer {
    return { status: 200, payload: this.page(url, key, items) };
  }
}
