/** DESIGN.md's backend lifecycle: shared by the inventory (which stores it) and the proxy (which acts on it). */
export const BACKEND_STATES = [
  "provisioning",
  "joining",
  "active",
  "unhealthy",
  "draining",
  "removed",
] as const;
export type BackendState = (typeof BACKEND_STATES)[number];
export type BackendKind = "static" | "droplet";
