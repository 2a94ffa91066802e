import type { Resource } from "../context.js";

/** Reserved IPs and their actions (the addresses live in reserved-ips.ts, shared with /_sim/state). */
export const reservedIps: Resource =
  (sim) =>
  ({ method, path, url, body }) =>
    sim.reservedIps.route(method, path, url, body);
