import type { CloudReservedIp } from "./provider.js";

/**
 * What the serve holding the reserved-ip lease does with the address on one check. Pure, tested
 * with a table; the keeper (reserved-ip.ts) gathers the inputs and carries the step out.
 */
export type ReservedIpStep =
  /** Not the holder: another serve keeps the address; nothing to do. */
  | { kind: "follower" }
  /** The address already points at this proxy's droplet. */
  | { kind: "held" }
  /** An assign or unassign is running (ours or someone's): look again shortly. */
  | { kind: "wait"; code: "locked" }
  /** Point the address at this proxy's droplet; `from` is who had it (null: nobody). */
  | { kind: "assign"; code: "unassigned" | "failover"; from: number | null }
  /** The account has no such address: a configuration error to report, not to retry quickly. */
  | { kind: "missing" };

export function reservedIpStep(input: {
  holdsLease: boolean;
  reserved: CloudReservedIp | undefined;
  selfDropletId: number;
}): ReservedIpStep {
  if (!input.holdsLease) return { kind: "follower" };
  const reserved = input.reserved;
  if (!reserved) return { kind: "missing" };
  if (reserved.dropletId === input.selfDropletId) return { kind: "held" };
  if (reserved.locked) return { kind: "wait", code: "locked" };
  return {
    kind: "assign",
    code: reserved.dropletId === null ? "unassigned" : "failover",
    from: reserved.dropletId,
  };
}
