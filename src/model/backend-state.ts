/**
 * DESIGN.md's backend lifecycle. It lives in the neutral model layer because the proxy, the
 * inventory and the autoscaler all speak it, and none of them may import another for it.
 */
export const BACKEND_STATES = [
  "provisioning",
  "joining",
  "active",
  "unhealthy",
  "draining",
  "removed",
] as const;
export type BackendState = (typeof BACKEND_STATES)[number];
