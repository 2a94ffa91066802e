import type { ApiError, FencedError } from "../errors.js";

/**
 * Where droplets come from. Everything outside src/cloud/ talks to this interface, never to the
 * DigitalOcean client, so the controller and commands stay independent of the API library.
 */
export interface CloudDroplet {
  id: number;
  name: string;
  status: "new" | "active" | "off" | "archive";
  tags: string[];
  privateIp: string | undefined;
  publicIp: string | undefined;
  createdAt: string;
  /** The size's virtual CPUs (for `[digitalocean] weight = "vcpus"`). */
  vcpus: number | undefined;
}

/**
 * What a create did, batch by batch: the droplets of every batch that succeeded are reported even
 * when a later batch failed, so none of them is lost.
 */
export interface CreateResult {
  created: CloudDroplet[];
  /**
   * The batch that failed (its droplets may exist when the failure is ambiguous), and why; a
   * FencedError means it was never sent (this process stopped leading before it left).
   */
  failed: { names: string[]; error: ApiError | FencedError } | undefined;
  /** Names in batches after the failure: never sent, so certainly not created. */
  notSent: string[];
}

/** A reserved IP as the pool needs it: which droplet holds it, and whether an action is running. */
export interface CloudReservedIp {
  ip: string;
  /** The droplet it is assigned to; null when unassigned. */
  dropletId: number | null;
  /** An assign or unassign is in progress: new actions are refused until it completes. */
  locked: boolean;
}

export interface CloudProvider {
  /** "DigitalOcean API at https://api.digitalocean.com", for messages. */
  readonly description: string;
  /** The pool's ownership tag: only droplets carrying it are ever adopted, scaled or destroyed. */
  readonly ownerTag: string;
  /** Checks the token and reachability (GET /v2/account). */
  verify(): Promise<void>;
  /**
   * Creates droplets with the configured settings and tags plus the ownership tag, ten per
   * request. Never re-sent when ambiguous. `stillWanted`, asked before each batch after the first,
   * drops names no longer wanted (their rows were closed while earlier batches took long): those
   * are reported `notSent`.
   */
  createDroplets(
    names: string[],
    stillWanted?: (batch: string[]) => Promise<string[]>,
  ): Promise<CreateResult>;
  /** One droplet, or undefined when it does not exist (or is not visible yet). */
  getDroplet(id: number): Promise<CloudDroplet | undefined>;
  /** Every droplet carrying the ownership tag, across all pages. */
  listOwned(): Promise<CloudDroplet[]>;
  /** Every droplet carrying `tag`, across all pages (to report droplets that are not this pool's). */
  listTagged(tag: string): Promise<CloudDroplet[]>;
  /** Droplets with this exact name (names are not unique on DigitalOcean). */
  listNamed(name: string): Promise<CloudDroplet[]>;
  /**
   * Destroys a droplet: "not-found" when the API answered 404, which means gone for an old
   * droplet but maybe "not visible yet" for one created moments ago (the caller knows its age).
   */
  destroyDroplet(id: number): Promise<"destroyed" | "not-found">;
  /** Problems with the configured region, size and image, as DigitalOcean lists them (empty: all available). */
  checkCatalogue(): Promise<string[]>;
  /** US dollars per hour for one droplet of the configured size (GET /v2/sizes); undefined if not listed. */
  hourlyPrice(): Promise<number | undefined>;
  /** The reserved IP, or undefined when the account has no such address. */
  getReservedIp(ip: string): Promise<CloudReservedIp | undefined>;
  /**
   * How much longer than usual to wait between polls (1: normal), from the API budget; absent:
   * always 1. See cloud/api-budget.ts.
   */
  pollStretch?(): number;
  /** Starts assigning the reserved IP to a droplet (moving it from any other); the action's id. */
  assignReservedIp(ip: string, dropletId: number): Promise<number>;
}

/** The address the proxy uses for a droplet, or undefined until the network is assigned. */
export function dropletAddress(
  droplet: CloudDroplet,
  usePrivateIp: boolean,
  port: number,
): string | undefined {
  const ip = usePrivateIp ? (droplet.privateIp ?? droplet.publicIp) : (droplet.publicIp ?? droplet.privateIp);
  return ip ? `${ip}:${port}` : undefined;
}

/** The ownership tag of a pool: valid DigitalOcean tag characters, derived from the pool's identity. */
export function ownershipTag(poolId: string): string {
  return `doproxy-pool-${poolId}`;
}
