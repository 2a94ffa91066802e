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
}

export interface CloudProvider {
  /** "DigitalOcean API at https://api.digitalocean.com", for messages. */
  readonly description: string;
  /** The tag that marks droplets as this pool's (the first of [digitalocean] tags). */
  readonly poolTag: string;
  /** Checks the token and reachability (GET /v2/account). */
  verify(): Promise<void>;
  /** Creates droplets with the configured region, size, image, keys, tags, user data and VPC. */
  createDroplets(names: string[]): Promise<CloudDroplet[]>;
  /** One droplet, or undefined when it no longer exists. */
  getDroplet(id: number): Promise<CloudDroplet | undefined>;
  /** Every droplet carrying the pool tag, across all pages. */
  listPool(): Promise<CloudDroplet[]>;
  /** Destroys a droplet; one that is already gone counts as destroyed. */
  destroyDroplet(id: number): Promise<void>;
  /** US dollars per hour for one droplet of the configured size (GET /v2/sizes); undefined if not listed. */
  hourlyPrice(): Promise<number | undefined>;
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
