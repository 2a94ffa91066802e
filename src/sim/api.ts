import { createHash, randomUUID } from "node:crypto";
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Logger } from "../log.js";
import { IMAGES, imageFor, imageJson, REGIONS, regionJson, SIZES, sizeJson } from "./catalogue.js";
import { type FaultChange, FaultInjector, type Faults, PENDING_EVENT } from "./faults.js";
import { RateLimiter } from "./ratelimit.js";
import { SimReservedIps } from "./reserved-ips.js";
import { ApiSpec } from "./spec.js";
import {
  actionJson,
  dropletJson,
  elsewhereRequest,
  POWER_ACTIONS,
  type PowerAction,
  type SimDroplet,
  SimState,
} from "./state.js";

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

export type { FailNext, Faults, ResetNext } from "./faults.js";

interface RequestRecord {
  ts: number;
  method: string;
  path: string;
  query: Record<string, string>;
  status: number;
  /** The connection was reset instead of answered (a resetNext fault). */
  reset?: boolean;
}

const ERROR_IDS: Record<number, string> = {
  400: "bad_request",
  401: "unauthorized",
  404: "not_found",
  422: "unprocessable_entity",
  429: "too_many_requests",
  500: "server_error",
  502: "bad_gateway",
  503: "service_unavailable",
};

/**
 * The simulator's answer of an API error: caught by its router and sent as the HTTP status and
 * DigitalOcean's `{ id, message }` body; never thrown to a person. doproxy's own side reads that
 * answer in cloud/digitalocean.ts as an `ApiError` (code DOPROXY_API), so it stays out of the
 * error catalogue (errors.ts).
 */
class ApiFailure extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * `doproxy sim`: the droplet part of DigitalOcean API v2 on loopback, with real simulated
 * droplets. Request bodies and queries are validated against DigitalOcean's OpenAPI document.
 */
export class Simulator {
  readonly state: SimState;
  /** Tags created with POST /v2/tags (tags on droplets exist through them). */
  private readonly tags = new Set<string>();
  private readonly sshKeys = new Map<
    number,
    { id: number; fingerprint: string; public_key: string; name: string }
  >();
  private readonly injector: FaultInjector;
  private readonly spec = new ApiSpec();
  private readonly limiter: RateLimiter;
  private readonly server: http.Server;
  readonly requests: RequestRecord[] = [];
  readonly reservedIps: SimReservedIps;

  constructor(
    private readonly options: SimOptions,
    private readonly log?: Logger,
  ) {
    this.state = new SimState(
      { capacity: options.capacity, serviceTimeMs: options.serviceTimeMs },
      options.bootTimeMs,
      options.backendPort,
      options.healthPath,
      (d) =>
        this.log?.info(
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
    this.server = http.createServer((req, res) => void this.handle(req, res));
  }

  /** The faults in force (changed in place by POST /_sim/faults). */
  get faults(): Faults {
    return this.injector.faults;
  }

  async listen(host: string, port: number): Promise<string> {
    await new Promise<void>((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(port, host, () => resolve());
    });
    const bound = this.server.address() as AddressInfo;
    return `http://${bound.address.includes(":") ? `[${bound.address}]` : bound.address}:${bound.port}`;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    await this.state.destroyAll();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", `http://${req.headers.host ?? "localhost"}`);
    const record: RequestRecord = {
      ts: Date.now(),
      method: req.method ?? "GET",
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      status: 0,
    };
    try {
      if (url.pathname.startsWith("/_sim/")) {
        await this.control(req, res, url, await readBody(req));
        return;
      }
      this.requests.push(record);
      if (this.requests.length > 10_000) this.requests.splice(0, 1000);
      const rate = this.limiter.take();
      // Every answer carries the rate-limit headers, a 400 for a body that is not JSON included.
      for (const [name, value] of Object.entries(rate.headers)) res.setHeader(name, value);
      const body = await readBody(req);
      if (this.options.token !== undefined && req.headers.authorization !== `Bearer ${this.options.token}`) {
        throw new ApiFailure(401, "Unable to authenticate you.");
      }
      if (rate.limited) throw new ApiFailure(429, "API Rate limit exceeded.");
      if (this.faults.slowMs > 0) await new Promise((resolve) => setTimeout(resolve, this.faults.slowMs));
      const method = req.method ?? "GET";
      const reset = this.injector.takeReset(method, url.pathname);
      if (reset && !reset.afterEffect) {
        record.reset = true;
        resetConnection(res);
        return;
      }
      const injected = this.injector.takeFailure(method, url.pathname);
      if (injected) {
        for (const [name, value] of Object.entries(injected.headers)) res.setHeader(name, value);
        throw new ApiFailure(injected.status, injected.message);
      }
      if (reset) {
        // The request takes effect, then its answer is lost with the connection.
        record.reset = true;
        await this.route(method, url, body).catch(() => undefined);
        resetConnection(res);
        return;
      }
      const { status, payload } = await this.route(method, url, body);
      record.status = status;
      send(res, status, payload);
    } catch (error) {
      const status = error instanceof ApiFailure ? error.status : 500;
      const message =
        error instanceof ApiFailure ? error.message : "Server was unable to give you a response.";
      record.status = status;
      send(res, status, { id: ERROR_IDS[status] ?? "error", message, request_id: randomUUID() });
    }
  }

  private async route(
    method: string,
    url: URL,
    body: unknown,
  ): Promise<{ status: number; payload?: unknown }> {
    const path = url.pathname.replace(/\/+$/, "");
    const dropletMatch = /^\/v2\/droplets\/(\d+)$/.exec(path);
    const actionMatch = /^\/v2\/actions\/(\d+)$/.exec(path);
    if (path === "/v2/droplets" && method === "GET") {
      this.checkQuery("get", "/v2/droplets", url);
      const tag = url.searchParams.get("tag_name") ?? undefined;
      const name = url.searchParams.get("name");
      const all = this.state.tagged(tag).filter((d) => !name || d.name === name);
      return { status: 200, payload: this.page(url, "droplets", all.map(dropletJson)) };
    }
    if (path === "/v2/droplets" && method === "POST") return this.delayedCreate(body, url.origin);
    if (path === "/v2/droplets" && method === "DELETE") {
      const tag = url.searchParams.get("tag_name");
      if (!tag) throw new ApiFailure(422, "tag_name is required to delete droplets by tag.");
      await Promise.all(this.state.tagged(tag).map((d) => this.state.destroy(d)));
      return { status: 204 };
    }
    if (dropletMatch && method === "GET")
      return { status: 200, payload: { droplet: dropletJson(this.droplet(dropletMatch[1] as string)) } };
    if (dropletMatch && method === "DELETE") {
      // A delete reaches a droplet even while lists lag behind it (so nothing created can leak).
      const target = this.state.droplets.get(Number(dropletMatch[1]));
      if (!target) throw new ApiFailure(404, "The resource you were accessing could not be found.");
      // A fault: a droplet created moments ago is 404 to a delete while it still exists and bills.
      if (Date.now() - target.createdMs < this.faults.deleteNotFoundYoungMs)
        throw new ApiFailure(404, "The resource you were accessing could not be found.");
      if (target.locked) throw new ApiFailure(422, PENDING_EVENT);
      await this.state.destroy(target);
      return { status: 204 };
    }
    if (path === "/v2/account" && method === "GET") {
      return {
        status: 200,
        payload: {
          account: {
            droplet_limit: this.options.dropletLimit,
            floating_ip_limit: 3,
            email: "sim@doproxy.invalid",
            name: "doproxy simulator",
            uuid: "b6fr89dbf6d9156cace5f3c78dc9851d957381ef",
            email_verified: true,
            status: "active",
            status_message: "",
            // A widely used DigitalOcean client crashes on an account answer without a team.
            team: { uuid: "5df3e3004a17e242b7c20ca6c9fc25b701a47ece", name: "doproxy simulator" },
          },
        },
      };
    }
    if (path === "/v2/actions" && method === "GET") {
      this.checkQuery("get", "/v2/actions", url);
      return {
        status: 200,
        payload: this.page(url, "actions", [...this.state.actions.values()].map(actionJson)),
      };
    }
    if (actionMatch && method === "GET") {
      const action = this.state.actions.get(Number(actionMatch[1]));
      if (!action) throw new ApiFailure(404, "The resource you were accessing could not be found.");
      return { status: 200, payload: { action: actionJson(action) } };
    }
    if (path === "/v2/regions" && method === "GET")
      return {
        status: 200,
        payload: this.page(
          url,
          "regions",
          REGIONS.map((r) => regionJson(r.slug)),
        ),
      };
    if (path === "/v2/sizes" && method === "GET")
      return {
        status: 200,
        payload: this.page(
          url,
          "sizes",
          SIZES.map((s) => sizeJson(s.slug)),
        ),
      };
    const extra =
      this.routeAroundDroplets(method, path, url, body) ?? this.reservedIps.route(method, path, url, body);
    if (extra) return extra;
    const imageMatch = /^\/v2\/images\/([\w.-]+)$/.exec(path);
    if (imageMatch && method === "GET") {
      const image = imageFor(
        /^\d+$/.test(imageMatch[1] as string) ? Number(imageMatch[1]) : (imageMatch[1] as string),
      );
      if (!image) throw new ApiFailure(404, "The resource you were accessing could not be found.");
      return { status: 200, payload: { image: imageJson(image, "2026-01-01T00:00:00Z") } };
    }
    throw new ApiFailure(404, "The resource you were accessing could not be found.");
  }

  /**
   * The rest of the API DigitalOcean's own tools use around droplets: tags, SSH keys, the image
   * list and droplet actions (power and reboot, with their progress and the droplet locked).
   */
  private routeAroundDroplets(
    method: string,
    path: string,
    url: URL,
    body: unknown,
  ): { status: number; payload?: unknown } | undefined {
    const notFound = () => new ApiFailure(404, "The resource you were accessing could not be found.");
    const tagJson = (name: string) => {
      const count = this.state.tagged(name).length;
      return { name, resources: { count, droplets: { count } } };
    };
    if (path === "/v2/tags" && method === "GET") {
      const names = new Set([...this.tags, ...this.state.tagged(undefined).flatMap((d) => d.tags)]);
      return { status: 200, payload: this.page(url, "tags", [...names].sort().map(tagJson)) };
    }
    if (path === "/v2/tags" && method === "POST") {
      const name = (body as { name?: unknown } | undefined)?.name;
      if (typeof name !== "string" || !/^[A-Za-z0-9_:-]{1,255}$/.test(name))
        throw new ApiFailure(
          422,
          "Tag name is invalid: tags may contain letters, numbers, colons, dashes, and underscores.",
        );
      this.tags.add(name);
      return { status: 201, payload: { tag: tagJson(name) } };
    }
    const tagMatch = /^\/v2\/tags\/([A-Za-z0-9_:-]+)$/.exec(path);
    if (tagMatch && method === "GET") {
      const name = tagMatch[1] as string;
      if (!this.tags.has(name) && this.state.tagged(name).length === 0) throw notFound();
      return { status: 200, payload: { tag: tagJson(name) } };
    }
    if (tagMatch && method === "DELETE") {
      if (!this.tags.delete(tagMatch[1] as string)) throw notFound();
      return { status: 204 };
    }
    if (path === "/v2/account/keys" && method === "GET")
      return { status: 200, payload: this.page(url, "ssh_keys", [...this.sshKeys.values()]) };
    if (path === "/v2/account/keys" && method === "POST") {
      const request = body as { name?: unknown; public_key?: unknown } | undefined;
      if (typeof request?.name !== "string" || typeof request.public_key !== "string")
        throw new ApiFailure(422, "name and public_key are required.");
      const key = {
        id: 289_794 + this.sshKeys.size,
        fingerprint: createHash("md5")
          .update(request.public_key)
          .digest("hex")
          .replace(/(..)(?!$)/g, "$1:"),
        public_key: request.public_key,
        name: request.name,
      };
      this.sshKeys.set(key.id, key);
      return { status: 201, payload: { ssh_key: key } };
    }
    if (path === "/v2/images" && method === "GET")
      return {
        status: 200,
        payload: this.page(
          url,
          "images",
          IMAGES.map((image) => imageJson(image, "2026-01-01T00:00:00Z")),
        ),
      };
    const actions = /^\/v2\/droplets\/(\d+)\/actions(?:\/(\d+))?$/.exec(path);
    if (actions) {
      const droplet = this.state.visible(Number(actions[1]));
      if (!droplet) throw notFound();
      const mine = [...this.state.actions.values()].filter((a) => a.resourceId === droplet.id);
      if (actions[2] !== undefined && method === "GET") {
        const action = mine.find((a) => a.id === Number(actions[2]));
        if (!action) throw notFound();
        return { status: 200, payload: { action: actionJson(action) } };
      }
      if (method === "GET") return { status: 200, payload: this.page(url, "actions", mine.map(actionJson)) };
      if (method === "POST") {
        const type = (body as { type?: unknown } | undefined)?.type;
        if (!POWER_ACTIONS.includes(type as PowerAction))
          throw new ApiFailure(422, `The action type "${String(type)}" is not supported by the simulator.`);
        if (droplet.locked || this.injector.takePendingConflict()) throw new ApiFailure(422, PENDING_EVENT);
        return {
          status: 201,
          payload: { action: actionJson(this.state.runAction(droplet, type as PowerAction)) },
        };
      }
    }
    return undefined;
  }

  /** A create, answered `createDelayMs` after its droplets were made (they exist and bill meanwhile). */
  private async delayedCreate(body: unknown, origin: string): Promise<{ status: number; payload: unknown }> {
    const before = this.state.created.length;
    try {
      return this.createDroplets(body, origin);
    } finally {
      if (this.faults.createDelayMs > 0 && this.state.created.length > before)
        await new Promise((resolve) => setTimeout(resolve, this.faults.createDelayMs));
    }
  }

  private createDroplets(body: unknown, origin: string): { status: number; payload: unknown } {
    const errors = this.spec.validateRequestBody("post", "/v2/droplets", body);
    if (errors.length > 0)
      throw new ApiFailure(422, `invalid request body: ${errors.slice(0, 3).join("; ")}`);
    const request = body as {
      name?: string;
      names?: string[];
      region?: string;
      size: string;
      image: string | number;
      tags?: string[] | null;
      vpc_uuid?: string;
      user_data?: string;
    };
    const names = request.names ?? [request.name as string];
    if (names.length === 0 || names.length > 10)
      throw new ApiFailure(422, "You may only create between 1 and 10 Droplets at a time.");
    for (const name of names) {
      if (!/^[a-zA-Z0-9]([a-zA-Z0-9.-]{0,253}[a-zA-Z0-9])?$/.test(name))
        throw new ApiFailure(422, `Name is invalid: ${name}`);
    }
    for (const tag of request.tags ?? []) {
      if (!/^[A-Za-z0-9_:-]{1,255}$/.test(tag))
        throw new ApiFailure(
          422,
          `Tag "${tag}" is invalid: tags may contain letters, numbers, colons, dashes, and underscores.`,
        );
    }
    if (request.user_data !== undefined && Buffer.byteLength(request.user_data) > 64 * 1024)
      throw new ApiFailure(422, "user_data is too long: the maximum size is 64 KiB.");
    if (this.faults.unavailableSizes.includes(request.size))
      throw new ApiFailure(422, "Size is not available in this region.");
    const region = request.region ?? "nyc3";
    if (!REGIONS.some((r) => r.slug === region))
      throw new ApiFailure(422, "You specified an invalid region for Droplet creation.");
    if (!SIZES.some((s) => s.slug === request.size))
      throw new ApiFailure(422, "You specified an invalid size for Droplet creation.");
    if (!imageFor(request.image))
      throw new ApiFailure(422, "You specified an invalid image for Droplet creation.");
    if (this.state.droplets.size + names.length > this.options.dropletLimit) {
      throw new ApiFailure(
        422,
        `creating this/these droplet(s) will exceed your droplet limit (${this.options.dropletLimit})`,
      );
    }
    const image = imageFor(request.image);
    const created = names.map((name) =>
      this.state.create(
        {
          name,
          region,
          size: request.size,
          image: request.image,
          tags: request.tags ?? [],
          vpcUuid: request.vpc_uuid || randomUUID(),
          userData: request.user_data,
        },
        this.injector.takeDropletFaults(request.image, image?.slug ?? undefined, image?.id),
      ),
    );
    if (this.injector.take("nameCollision")) {
      // Names are not unique on DigitalOcean: another team's droplet with the same name, untagged.
      for (const d of created)
        this.state.create({
          name: d.name,
          region,
          size: request.size,
          image: request.image,
          tags: [],
          vpcUuid: randomUUID(),
        });
    }
    if (this.injector.take("acceptThenFail"))
      throw new ApiFailure(500, "Server was unable to give you a response.");
    const actions = created.map((d) => ({
      id: d.createActionId,
      rel: "create",
      href: `${origin}/v2/actions/${d.createActionId}`,
    }));
    const payload = request.names
      ? { droplets: created.map(dropletJson), links: { actions } }
      : { droplet: dropletJson(created[0] as SimDroplet), links: { actions } };
    return { status: 202, payload };
  }

  private droplet(idText: string): SimDroplet {
    const droplet = this.state.visible(Number(idText));
    if (!droplet) throw new ApiFailure(404, "The resource you were accessing could not be found.");
    return droplet;
  }

  /** Rejects query parameters the spec does not allow (per_page above 200, page 0 ...). */
  private checkQuery(method: string, specPath: string, url: URL): void {
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
  private page(url: URL, key: string, items: unknown[]): Record<string, unknown> {
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

  /**
   * Test and demo control: GET state, requests and billing; POST faults, capacity and droplets
   * made outside doproxy.
   */
  private async control(req: IncomingMessage, res: ServerResponse, url: URL, body: unknown): Promise<void> {
    if (url.pathname === "/_sim/state") {
      send(res, 200, {
        droplets: [...this.state.droplets.values()].map((d) => ({
          id: d.id,
          name: d.name,
          status: d.status,
          tags: d.tags,
          address: d.privateIp ? `${d.privateIp}:${this.options.backendPort}` : null,
          inFlight: d.server?.inFlight ?? 0,
          served: d.server?.served ?? 0,
          unhealthy: d.unhealthy,
          createdMs: d.createdMs,
        })),
        faults: this.faults,
        destroyedWithInFlight: this.state.destroyedWithInFlight,
        created: this.state.created,
        reservedIps: this.reservedIps.snapshot(),
      });
      return;
    }
    if (url.pathname === "/_sim/requests") {
      send(res, 200, { requests: this.requests });
      return;
    }
    if (url.pathname === "/_sim/billing" && req.method === "GET") {
      send(res, 200, this.state.billing.report(url.searchParams.get("tag") ?? undefined));
      return;
    }
    if (url.pathname === "/_sim/droplets" && req.method === "POST") {
      const droplet = await this.createElsewhere(body);
      send(res, 201, { droplet: dropletJson(droplet) });
      return;
    }
    if (url.pathname === "/_sim/faults" && req.method === "POST") {
      try {
        this.injector.apply((body ?? {}) as FaultChange, {
          state: this.state,
          limiter: this.limiter,
          failHealth: (id, failing) => {
            const droplet = this.state.droplets.get(id);
            if (!droplet) return;
            if (!failing) droplet.unhealthy = false;
            if (droplet.server) {
              droplet.server.failingHealth = failing;
              if (!failing) droplet.server.unhealthy = false;
            }
          },
        });
      } catch (error) {
        throw new ApiFailure(400, (error as Error).message);
      }
      send(res, 200, { faults: this.faults });
      return;
    }
    send(res, 404, { id: "not_found", message: "unknown simulator control endpoint" });
  }

  /** POST /_sim/droplets: a droplet made by hand or by another tool, for adoption tests. */
  private createElsewhere(body: unknown): Promise<SimDroplet> {
    let request: ReturnType<typeof elsewhereRequest>;
    try {
      request = elsewhereRequest(body);
    } catch (error) {
      throw new ApiFailure(422, (error as Error).message);
    }
    return this.state.createElsewhere(
      { ...request.spec, vpcUuid: randomUUID() },
      request.status,
      request.activeAfterMs,
    );
  }
}

function resetConnection(res: ServerResponse): void {
  const socket = res.socket;
  if (!socket) return;
  // A TCP reset where the platform allows it (the client sees ECONNRESET), else a plain close.
  if (typeof socket.resetAndDestroy === "function") socket.resetAndDestroy();
  else socket.destroy();
}

async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  if (chunks.length === 0) return undefined;
  const text = Buffer.concat(chunks).toString("utf8");
  if (text.trim() === "") return undefined;
  try {
    return JSON.parse(text);
  } catch {
    throw new ApiFailure(400, "The request body is not valid JSON.");
  }
}

function send(res: ServerResponse, status: number, payload?: unknown): void {
  if (status === 204 || payload === undefined) {
    res.writeHead(status, { "content-type": "application/json; charset=utf-8" });
    res.end();
    return;
  }
  const body = JSON.stringify(payload);
  res.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(body),
  });
  res.end(body);
}
