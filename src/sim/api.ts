import { randomUUID } from "node:crypto";
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Logger } from "../log.js";
import { ApiFailure, failureAnswer, readBody, resetConnection, send } from "./answer.js";
import { SimContext, type SimOptions } from "./context.js";
import { control } from "./control.js";
import type { Faults } from "./faults.js";
import { RequestLog, type RequestRecord } from "./request-log.js";
import type { SimReservedIps } from "./reserved-ips.js";
import { Router } from "./router.js";
import type { SimState } from "./state.js";

export type { SimOptions } from "./context.js";
export type { FailNext, Faults, ResetNext } from "./faults.js";

/**
 * `doproxy sim`: the droplet part of DigitalOcean API v2 on loopback, with real simulated
 * droplets. Request bodies and queries are validated against DigitalOcean's OpenAPI document.
 * The resources answer in resources/ (through router.ts), the test controls in control.ts; here
 * is the server and what every /v2 request goes through: the log, the token, the rate limit and
 * the faults.
 */
export class Simulator {
  private readonly sim: SimContext;
  private readonly router: Router;
  private readonly log = new RequestLog();
  private readonly server: http.Server;

  constructor(options: SimOptions, log?: Logger) {
    this.sim = new SimContext(options, log);
    this.router = new Router(this.sim);
    this.server = http.createServer((req, res) => void this.handle(req, res));
  }

  get state(): SimState {
    return this.sim.state;
  }

  get reservedIps(): SimReservedIps {
    return this.sim.reservedIps;
  }

  /** The /v2 requests answered so far (GET /_sim/requests). */
  get requests(): RequestRecord[] {
    return this.log.records;
  }

  /** The faults in force (changed in place by POST /_sim/faults). */
  get faults(): Faults {
    return this.sim.faults;
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
    await this.sim.state.destroyAll();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", `http://${req.headers.host ?? "localhost"}`);
    const method = req.method ?? "GET";
    let record: RequestRecord | undefined;
    try {
      if (url.pathname.startsWith("/_sim/")) {
        await control(this.sim, this.log, method, url, await readBody(req), res);
        return;
      }
      record = this.log.start(method, url);
      const { options, faults, injector } = this.sim;
      const rate = this.sim.limiter.take();
      // Every answer carries the rate-limit headers, a 400 for a body that is not JSON included.
      for (const [name, value] of Object.entries(rate.headers)) res.setHeader(name, value);
      const body = await readBody(req);
      if (options.token !== undefined && req.headers.authorization !== `Bearer ${options.token}`) {
        throw new ApiFailure(401, "Unable to authenticate you.");
      }
      if (rate.limited) throw new ApiFailure(429, "API Rate limit exceeded.");
      if (faults.slowMs > 0) await new Promise((resolve) => setTimeout(resolve, faults.slowMs));
      const reset = injector.takeReset(method, url.pathname);
      if (reset && !reset.afterEffect) {
        record.reset = true;
        resetConnection(res);
        return;
      }
      const injected = injector.takeFailure(method, url.pathname);
      if (injected) {
        for (const [name, value] of Object.entries(injected.headers)) res.setHeader(name, value);
        throw new ApiFailure(injected.status, injected.message);
      }
      if (reset) {
        // The request takes effect, then its answer is lost with the connection.
        record.reset = true;
        await this.router.route(method, url, body).catch(() => undefined);
        resetConnection(res);
        return;
      }
      const { status, payload } = await this.router.route(method, url, body);
      record.status = status;
      send(res, status, payload);
    } catch (error) {
      const { status, payload } = failureAnswer(error, randomUUID());
      if (record) record.status = status;
      send(res, status, payload);
    }
  }
}
