import { imageFor, imageJson, regionJson, sizeJson } from "./catalogue.js";
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
  privateIp: string | undefined;
  publicIp: string | undefined;
  server: DropletServer | undefined;
  bootTimer: NodeJS.Timeout | undefined;
  /** A fault: this droplet stays `new` for ever. */
  neverBoots: boolean;
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
    neverBoots: boolean,
  ): SimDroplet {
    const droplet: SimDroplet = {
      id: this.nextDropletId++,
      ...spec,
      userData: spec.userData,
      status: "new",
      createdAt: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
      privateIp: undefined,
      publicIp: undefined,
      server: undefined,
      bootTimer: undefined,
      neverBoots,
      createActionId: 0,
      visibleAt: Date.now() + this.listLagMs,
      locked: false,
    };
    this.droplets.set(droplet.id, droplet);
    this.created.push({ id: droplet.id, name: droplet.name, tags: [...droplet.tags] });
    const action = this.addAction("create", droplet.id);
    droplet.createActionId = action.id;
    if (!neverBoots) {
      droplet.bootTimer = setTimeout(() => void this.boot(droplet, action), this.bootTimeMs);
      droplet.bootTimer.unref?.();
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
    this.droplets.delete(droplet.id);
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
    // An address goes to a new droplet only a while after its droplet was destroyed (as on the real
    // service), so a client of the old one never reaches the new one by accident.
    const reusable =
      this.freeHosts.length > 0 &&
      (Date.now() - (this.freeHosts[0]?.freedAt ?? 0) > 60_000 || this.nextHost > 254);
    const host = reusable ? (this.freeHosts.shift()?.host as number) : this.nextHost++;
    droplet.privateIp = `127.0.1.${host}`;
    droplet.publicIp = `127.0.2.${host}`;
    await this.startServer(droplet, action);
  }

  /** The machine comes up: its HTTP server listens on its addresses. */
  private async startServer(droplet: SimDroplet, action: SimAction): Promise<void> {
    const server = new DropletServer(droplet.name, this.capacity, this.healthPath);
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
