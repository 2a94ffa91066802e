import { regionJson } from "./catalogue.js";
import { PENDING_EVENT } from "./faults.js";
import type { ApiSpec } from "./spec.js";
import { actionJson, dropletJson, type SimAction, type SimState } from "./state.js";

/** An API failure the simulator answers with (answer.ts's ApiFailure). */
export type FailWith = (status: number, message: string) => Error;

interface SimReservedIp {
  ip: string;
  region: string;
  /** The droplet it is assigned to; null when unassigned. */
  dropletId: number | null;
  /** An assign or unassign is running: new actions are refused, as DigitalOcean does. */
  locked: boolean;
}

const PROJECT_ID = "746c6152-2fa2-11ed-92d3-27aaa54e4988";

/** A reserved IP's action id space is the account's; its resource id is the address as a number. */
function addressNumber(ip: string): number {
  return ip.split(".").reduce((n, part) => n * 256 + Number(part), 0);
}

/**
 * Reserved IPs in the simulator (DigitalOcean's "Reserved IPs" and "Reserved IP Actions"): create
 * one in a region or for a droplet, show, list and delete them, and assign or unassign them with
 * an action that locks the address until it completes (after `actionMs`, as on the real service,
 * where an assignment takes a few seconds). Addresses are 127.0.3.N: loopback, never reachable
 * elsewhere. A destroyed droplet loses its reserved IP. Requests are validated against the spec.
 */
export class SimReservedIps {
  private readonly ips = new Map<string, SimReservedIp>();
  private nextHost = 10;
  actionMs = 300;
  /** A fault: whether this assign is refused as if its droplet had a pending event. */
  pendingConflict: () => boolean = () => false;

  constructor(
    private readonly state: SimState,
    private readonly spec: ApiSpec,
    private readonly fail: FailWith,
    private readonly page: (url: URL, key: string, items: unknown[]) => Record<string, unknown>,
  ) {}

  /** Answers a reserved IP path, or undefined when the path is not one. */
  route(
    method: string,
    path: string,
    url: URL,
    body: unknown,
  ): { status: number; payload?: unknown } | undefined {
    if (path === "/v2/reserved_ips" && method === "GET") {
      return {
        status: 200,
        payload: this.page(
          url,
          "reserved_ips",
          [...this.ips.values()].map((r) => this.json(r)),
        ),
      };
    }
    if (path === "/v2/reserved_ips" && method === "POST") return this.create(body, url.origin);
    const one = /^\/v2\/reserved_ips\/(\d{1,3}(?:\.\d{1,3}){3})(\/actions(?:\/(\d+))?)?$/.exec(path);
    if (!one) return undefined;
    const reserved = this.ips.get(one[1] as string);
    if (!reserved) throw this.fail(404, "The resource you were accessing could not be found.");
    this.settle(reserved);
    if (!one[2]) {
      if (method === "GET") return { status: 200, payload: { reserved_ip: this.json(reserved) } };
      if (method === "DELETE") {
        if (reserved.locked) throw this.fail(422, "The reserved IP has a pending event.");
        this.ips.delete(reserved.ip);
        return { status: 204 };
      }
      return undefined;
    }
    const mine = [...this.state.actions.values()].filter(
      (a) => a.resourceType === "reserved_ip" && a.resourceId === addressNumber(reserved.ip),
    );
    if (one[3] !== undefined && method === "GET") {
      const action = mine.find((a) => a.id === Number(one[3]));
      if (!action) throw this.fail(404, "The resource you were accessing could not be found.");
      return { status: 200, payload: { action: { ...actionJson(action), project_id: PROJECT_ID } } };
    }
    if (one[3] === undefined && method === "GET")
      return { status: 200, payload: this.page(url, "actions", mine.map(actionJson)) };
    if (one[3] === undefined && method === "POST") return this.act(reserved, body);
    return undefined;
  }

  private create(body: unknown, origin: string): { status: number; payload: unknown } {
    const errors = this.spec.validateRequestBody("post", "/v2/reserved_ips", body);
    if (errors.length > 0) throw this.fail(422, `invalid request body: ${errors.slice(0, 3).join("; ")}`);
    const request = body as { droplet_id?: number; region?: string };
    const droplet = request.droplet_id === undefined ? undefined : this.state.visible(request.droplet_id);
    if (request.droplet_id !== undefined && !droplet) throw this.fail(422, "Droplet not found.");
    if (droplet) this.checkPending(droplet);
    const host = this.nextHost++;
    if (host > 254) throw this.fail(422, "You have reached the reserved IP limit of the simulator.");
    const reserved: SimReservedIp = {
      ip: `127.0.3.${host}`,
      region: droplet?.region ?? request.region ?? "nyc3",
      dropletId: null,
      locked: false,
    };
    this.ips.set(reserved.ip, reserved);
    if (!droplet) return { status: 202, payload: { reserved_ip: this.json(reserved), links: {} } };
    const action = this.start(reserved, "assign_ip", droplet.id);
    return {
      status: 202,
      payload: {
        reserved_ip: this.json(reserved),
        links: {
          droplets: [{ id: droplet.id, rel: "droplet", href: `${origin}/v2/droplets/${droplet.id}` }],
          actions: [{ id: action.id, rel: "assign_ip", href: `${origin}/v2/actions/${action.id}` }],
        },
      },
    };
  }

  private act(reserved: SimReservedIp, body: unknown): { status: number; payload: unknown } {
    const errors = this.spec.validateRequestBody("post", "/v2/reserved_ips/{reserved_ip}/actions", body);
    if (errors.length > 0) throw this.fail(422, `invalid request body: ${errors.slice(0, 3).join("; ")}`);
    const request = body as { type: "assign" | "unassign"; droplet_id?: number };
    if (reserved.locked) throw this.fail(422, "The reserved IP has a pending event.");
    let action: SimAction;
    if (request.type === "assign") {
      const droplet = request.droplet_id === undefined ? undefined : this.state.visible(request.droplet_id);
      if (!droplet) throw this.fail(422, "Droplet not found.");
      if (droplet.region !== reserved.region)
        throw this.fail(
          422,
          `The reserved IP is reserved to ${reserved.region}; the droplet is in ${droplet.region}.`,
        );
      this.checkPending(droplet);
      action = this.start(reserved, "assign_ip", droplet.id);
    } else {
      if (reserved.dropletId === null) throw this.fail(422, "The reserved IP is not assigned to a droplet.");
      action = this.start(reserved, "unassign_ip", null);
    }
    return { status: 201, payload: { action: { ...actionJson(action), project_id: PROJECT_ID } } };
  }

  /** An assign onto a droplet with an action in progress is refused, as DigitalOcean does. */
  private checkPending(droplet: { locked: boolean }): void {
    if (droplet.locked || this.pendingConflict()) throw this.fail(422, PENDING_EVENT);
  }

  /** Starts an assignment (or removal) that completes after `actionMs`, the address locked meanwhile. */
  private start(
    reserved: SimReservedIp,
    type: "assign_ip" | "unassign_ip",
    dropletId: number | null,
  ): SimAction {
    const action = this.state.addAction(type, addressNumber(reserved.ip), "in-progress", "reserved_ip");
    reserved.locked = true;
    const timer = setTimeout(() => {
      reserved.dropletId = dropletId;
      reserved.locked = false;
      action.status = "completed";
      action.completedAt = new Date().toISOString().replace(/\.\d+Z$/, "Z");
    }, this.actionMs);
    timer.unref?.();
    return action;
  }

  /** A destroyed droplet's reserved IP is unassigned, as on DigitalOcean. */
  private settle(reserved: SimReservedIp): void {
    if (reserved.dropletId !== null && !this.state.droplets.has(reserved.dropletId))
      reserved.dropletId = null;
  }

  private json(reserved: SimReservedIp) {
    this.settle(reserved);
    const droplet = reserved.dropletId === null ? undefined : this.state.droplets.get(reserved.dropletId);
    return {
      ip: reserved.ip,
      region: regionJson(reserved.region),
      droplet: droplet ? dropletJson(droplet) : null,
      locked: reserved.locked,
      project_id: PROJECT_ID,
    };
  }

  /** For /_sim/state: which droplet holds each address. */
  snapshot(): Array<{ ip: string; dropletId: number | null; locked: boolean }> {
    return [...this.ips.values()].map((r) => {
      this.settle(r);
      return { ip: r.ip, dropletId: r.dropletId, locked: r.locked };
    });
  }
}
