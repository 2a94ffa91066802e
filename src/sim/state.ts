import { BillingLedger } from "./billing.js";
import { imageFor, imageJson, REGIONS, regionJson, SIZES, sizeJson } from "./catalogue.js";
import { type CapacitySettings, DropletServer } from "./droplet-server.js";

export type SimStatus = "new" | "active" | "off" | "archive";

export interface SimDroplet {
  id: number;
  name: string;
  region: string;
  size: string;
  image: string | number;
  tags: string[];
  vpcUuid: string;
  userData: string | undefined;
  status: SimStatus;
  createdAt: string;
  /** When it was created (ms), for faults that depend on a droplet's age. */
  createdMs: number;
  privateIp: string | undefined;
  publicIp: string | undefined;
  server: DropletServer | undefined;
  bootTimer: NodeJS.Timeout | undefined;
  /** A fault: this droplet stays `new` for ever. */
  neverBoots: boolean;
  /** A fault: it boots and serves, but its health path answers 503 (a bad image). */
  unhealthy: boolean;
  /** The action that tracks its creation (the create answer links to it). */
  createActionId: number;
  /** Until this time (ms) it is missing from lists and 404 by id, as a new droplet can be. */
  visibleAt: number;
  /** An action (power, reboot) is running: new actions and deletes are refused. */
  locked: boolean;
}

/** The droplet actions the simulator models, with the power state each leaves. */
export const POWER_ACTIONS = ["power_cycle", "reboot", "shutdown", "power_off", "power_on"] as const;
export type PowerAction = (typeof POWER_ACTIONS)[number];

export interface SimAction {
  id: number;
  status: "in-progress" | "completed" | "errored";
  type: string;
  startedAt: string;
  completedAt: string | null;
  resourceId: number;
  /** What the action acts on: a droplet unless said otherwise. */
  resourceType?: "droplet" | "reserved_ip";
}

/**
 * The simulator's account: droplets, actions, and the address plan (private 127.0.1.N,
 * public 127.0.2.N) that gives each booted droplet a real HTTP server of its own.
 */
export class SimState {
  readonly droplets = new Map<number, SimDroplet>();
  readonly actions = new Map<number, SimAction>();
  private nextDropletId = 500_000_001;
  private nextActionId = 2_000_000_001;
  private nextHost = 2;
  /** Addresses of destroyed droplets, with when they were freed: reused only after a quarantine. */
  private readonly freeHosts: Array<{ host: number; freedAt: number }> = [];
  /** Droplets destroyed while requests were still in flight on them (a drain that did not happen). */
  destroyedWithInFlight = 0;
  /** How long a new droplet stays out of lists and 404 by id (DigitalOcean's eventual consistency). */
  listLagMs = 0;
  /** How long a destroyed droplet is still listed after its 204. */
  deleteLagMs = 0;
  /** Every droplet ever created, for tests that count creates (duplicates, leaks). */
  readonly created: Array<{ id: number; name: string; tags: string[] }> = [];
  /** A fault: new droplets serve on their public address only (a private network doproxy cannot reach). */
  privateUnreachable = false;
  /** How many droplets exist (and bill) at each moment, by tag. */
  readonly billing = new BillingLedger();
  /** Destroyed droplets still listed, with when they finally go. */
  private readonly ghosts = new Map<number, { droplet: SimDroplet; until: number }>();

  constructor(
    public capacity: CapacitySettings,
    public bootTimeMs: number,
    readonly backendPort: number,
    readonly healthPath: string,
    private readonly onBooted: (droplet: SimDroplet) => void = () => undefined,
  ) {}

  create(
    spec: Pick<SimDroplet, "name" | "region" | "size" | "image" | "tags" | "vpcUuid"> & { userData?: string },
    options: {
      /** It stays `new` for ever. */
      neverBoots?: boolean;
      /** Its health path answers 503. */
      unhealthy?: boolean;
      /** It becomes active after this long instead of the boot time. */
      bootAfterMs?: number;
      /** Listed at once, without the list lag (a droplet made elsewhere a while ago). */
      listedAtOnce?: boolean;
    } = {},
  ): SimDroplet {
    const now = Date.now();
    const droplet: SimDroplet = {
      id: this.nextDropletId++,
      ...spec,
      userData: spec.userData,
      status: "new",
      createdAt: new Date(now).toISOString().replace(/\.\d+Z$/, "Z"),
      createdMs: now,
      privateIp: undefined,
      publicIp: undefined,
      server: undefined,
      bootTimer: undefined,
      neverBoots: options.neverBoots === true,
      unhealthy: options.unhealthy === true,
      createActionId: 0,
      visibleAt: options.listedAtOnce ? now : now + this.listLagMs,
      locked: false,
    };
    this.droplets.set(droplet.id, droplet);
    this.created.push({ id: droplet.id, name: droplet.name, tags: [...droplet.tags] });
    this.billing.created(droplet, now);
    const action = this.addAction("create", droplet.id);
    droplet.createActionId = action.id;
    if (!droplet.neverBoots) {
      droplet.bootTimer = setTimeout(
        () => void this.boot(droplet, action),
        options.bootAfterMs ?? this.bootTimeMs,
      );
      droplet.bootTimer.unref?.();
    }
    return droplet;
  }

  /**
   * A droplet made outside doproxy (by hand, by another tool), for adoption tests: untagged unless
   * tags are given, listed at once, and `new` (active after `activeAfterMs`, or never), `active`
   * (booted and serving when this returns) or `off` (addressed, not serving, until a power_on).
   */
  async createElsewhere(
    spec: Pick<SimDroplet, "name" | "region" | "size" | "image" | "tags" | "vpcUuid">,
    status: "new" | "active" | "off",
    activeAfterMs?: number,
  ): Promise<SimDroplet> {
    const droplet = this.create(spec, {
      neverBoots: status !== "new" || activeAfterMs === undefined,
      bootAfterMs: activeAfterMs,
      listedAtOnce: true,
    });
    const action = this.actions.get(droplet.createActionId) as SimAction;
    if (status === "active") {
      await this.boot(droplet, action);
      droplet.neverBoots = false;
    } else if (status === "off") {
      this.assignAddresses(droplet);
      droplet.status = "off";
      droplet.neverBoots = false;
      this.finish(droplet, action);
    }
    return droplet;
  }

  /** The droplet by id as the API shows it: not while a new one lags, not once destroyed. */
  visible(id: number, now = Date.now()): SimDroplet | undefined {
    const droplet = this.droplets.get(id);
    return droplet && now >= droplet.visibleAt ? droplet : undefined;
  }

  async destroy(droplet: SimDroplet): Promise<void> {
    if (this.deleteLagMs > 0)
      this.ghosts.set(droplet.id, { droplet: { ...droplet }, until: Date.now() + this.deleteLagMs });
    if (this.droplets.delete(droplet.id)) this.billing.destroyed(droplet);
    if (droplet.bootTimer) clearTimeout(droplet.bootTimer);
    this.addAction("destroy", droplet.id, "completed");
    const server = droplet.server;
    if (server && server.inFlight > 0) this.destroyedWithInFlight++;
    droplet.server = undefined;
    droplet.status = "archive";
    if (server) await server.close();
    const host = droplet.privateIp ? Number(droplet.privateIp.split(".")[3]) : undefined;
    if (host !== undefined) this.freeHosts.push({ host, freedAt: Date.now() });
  }

  async destroyAll(): Promise<void> {
    await Promise.all([...this.droplets.values()].map((d) => this.destroy(d)));
  }

  /** What a list shows: droplets past their list lag, and destroyed ones still within the delete lag. */
  tagged(tag: string | undefined, now = Date.now()): SimDroplet[] {
    for (const [id, ghost] of this.ghosts) if (ghost.until <= now) this.ghosts.delete(id);
    const all = [
      ...[...this.droplets.values()].filter((d) => now >= d.visibleAt),
      ...[...this.ghosts.values()].map((g) => g.droplet),
    ].sort((a, b) => a.id - b.id);
    return tag === undefined ? all : all.filter((d) => d.tags.includes(tag));
  }

  private async boot(droplet: SimDroplet, action: SimAction): Promise<void> {
    if (!this.droplets.has(droplet.id)) return;
    this.assignAddresses(droplet);
    await this.startServer(droplet, action);
  }

  private assignAddresses(droplet: SimDroplet): void {
    // An address goes to a new droplet only a while after its droplet was destroyed (as on the real
    // service), so a client of the old one never reaches the new one by accident.
    const reusable =
      this.freeHosts.length > 0 &&
      (Date.now() - (this.freeHosts[0]?.freedAt ?? 0) > 60_000 || this.nextHost > 254);
    const host = reusable ? (this.freeHosts.shift()?.host as number) : this.nextHost++;
    droplet.privateIp = `127.0.1.${host}`;
    droplet.publicIp = `127.0.2.${host}`;
  }

  /** The machine comes up: its HTTP server listens on its addresses. */
  private async startServer(droplet: SimDroplet, action: SimAction): Promise<void> {
    const server = new DropletServer(droplet.name, this.capacity, this.healthPath);
    server.unhealthy = droplet.unhealthy;
    const addresses = this.privateUnreachable
      ? [droplet.publicIp as string]
      : [droplet.privateIp as string, droplet.publicIp as string];
    try {
      await server.listen(addresses, this.backendPort);
    } catch {
      action.status = "errored";
      return;
    }
    if (!this.droplets.has(droplet.id)) {
      await server.close();
      return;
    }
    droplet.server = server;
    droplet.status = "active";
    action.status = "completed";
    action.completedAt = new Date().toISOString().replace(/\.\d+Z$/, "Z");
    this.onBooted(droplet);
  }

  /**
   * A power or reboot action: the droplet is locked while it runs (half the boot time); its server
   * stops as the machine goes down and starts again as it comes up.
   */
  runAction(droplet: SimDroplet, type: PowerAction): SimAction {
    const action = this.addAction(type, droplet.id);
    droplet.locked = true;
    const timer = setTimeout(
      async () => {
        if (!this.droplets.has(droplet.id)) return;
        const server = droplet.server;
        droplet.server = undefined;
        if (server) await server.close();
        if (type === "shutdown" || type === "power_off") {
          droplet.status = "off";
          this.finish(droplet, action);
          return;
        }
        droplet.status = "new";
        await this.startServer(droplet, action);
        droplet.locked = false;
      },
      Math.max(100, this.bootTimeMs / 2),
    );
    timer.unref?.();
    return action;
  }

  private finish(droplet: SimDroplet, action: SimAction): void {
    droplet.locked = false;
    action.status = "completed";
    action.completedAt = new Date().toISOString().replace(/\.\d+Z$/, "Z");
  }

  addAction(
    type: string,
    resourceId: number,
    status: SimAction["status"] = "in-progress",
    resourceType: SimAction["resourceType"] = "droplet",
  ): SimAction {
    const now = new Date().toISOString().replace(/\.\d+Z$/, "Z");
    const action: SimAction = {
      id: this.nextActionId++,
      status,
      type,
      startedAt: now,
      completedAt: status === "completed" ? now : null,
      resourceId,
      resourceType,
    };
    this.actions.set(action.id, action);
    return action;
  }
}

/** A droplet as the API shows it (the spec's `droplet` schema). */
export function dropletJson(d: SimDroplet) {
  const size = sizeJson(d.size);
  const image = imageFor(d.image);
  const v4 = [];
  if (d.privateIp)
    v4.push({ ip_address: d.privateIp, netmask: "255.255.0.0", gateway: "127.0.1.1", type: "private" });
  if (d.publicIp)
    v4.push({ ip_address: d.publicIp, netmask: "255.255.0.0", gateway: "127.0.2.1", type: "public" });
  return {
    id: d.id,
    name: d.name,
    memory: size.memory,
    vcpus: size.vcpus,
    disk: size.disk,
    locked: d.locked,
    status: d.status,
    kernel: null,
    created_at: d.createdAt,
    features: ["private_networking"],
    backup_ids: [],
    next_backup_window: null,
    snapshot_ids: [],
    image: image ? imageJson(image, d.createdAt) : {},
    volume_ids: [],
    size,
    size_slug: size.slug,
    networks: { v4, v6: [] },
    region: regionJson(d.region),
    tags: d.tags,
    vpc_uuid: d.vpcUuid,
  };
}

export function actionJson(a: SimAction) {
  return {
    id: a.id,
    status: a.status,
    type: a.type,
    started_at: a.startedAt,
    completed_at: a.completedAt,
    resource_id: a.resourceId,
    resource_type: a.resourceType ?? "droplet",
    region: regionJson("nyc3"),
    region_slug: "nyc3",
  };
}

/** A POST /_sim/droplets body checked; throws an Error naming the bad field. */
export function elsewhereRequest(body: unknown): {
  spec: Pick<SimDroplet, "name" | "region" | "size" | "image" | "tags">;
  status: "new" | "active" | "off";
  activeAfterMs: number | undefined;
} {
  const request = (body ?? {}) as Record<string, unknown>;
  const name = request.name;
  if (typeof name !== "string" || !/^[a-zA-Z0-9]([a-zA-Z0-9.-]{0,253}[a-zA-Z0-9])?$/.test(name))
    throw new Error("name: expected a droplet name");
  const tags = request.tags ?? [];
  if (!Array.isArray(tags) || !tags.every((t) => typeof t === "string" && /^[A-Za-z0-9_:-]{1,255}$/.test(t)))
    throw new Error("tags: expected a list of tag names");
  const status = request.status ?? "active";
  if (status !== "new" && status !== "off" && status !== "active")
    throw new Error('status: expected "new", "off" or "active"');
  const activeAfterMs = request.activeAfterMs;
  if (activeAfterMs !== undefined && !(typeof activeAfterMs === "number" && activeAfterMs >= 0))
    throw new Error("activeAfterMs: expected a number of milliseconds");
  const region = typeof request.region === "string" ? request.region : "nyc3";
  const size = typeof request.size === "string" ? request.size : "s-1vcpu-1gb";
  const image =
    typeof request.image === "string" || typeof request.image === "number"
      ? request.image
      : "ubuntu-24-04-x64";
  if (!REGIONS.some((r) => r.slug === region)) throw new Error(`region: unknown region ${region}`);
  if (!SIZES.some((s) => s.slug === size)) throw new Error(`size: unknown size ${size}`);
  if (!imageFor(image)) throw new Error(`image: unknown image ${image}`);
  return { spec: { name, region, size, image, tags: tags as string[] }, status, activeAfterMs };
}
