import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { CloudReservedIp } from "../../../src/cloud/provider.js";
import { type ReservedIpStep, reservedIpStep } from "../../../src/cloud/reserved-ip-rule.js";

const SELF = 500_000_002;
const OTHER = 500_000_001;
const ip = (dropletId: number | null, locked = false): CloudReservedIp => ({
  ip: "203.0.113.10",
  dropletId,
  locked,
});

const table: Array<{
  name: string;
  holdsLease: boolean;
  reserved: CloudReservedIp | undefined;
  step: ReservedIpStep;
}> = [
  {
    name: "a serve without the lease leaves the address alone",
    holdsLease: false,
    reserved: ip(OTHER),
    step: { kind: "follower" },
  },
  {
    name: "already on this proxy's droplet: nothing to do",
    holdsLease: true,
    reserved: ip(SELF),
    step: { kind: "held" },
  },
  {
    name: "unassigned: assign it here",
    holdsLease: true,
    reserved: ip(null),
    step: { kind: "assign", code: "unassigned", from: null },
  },
  {
    name: "on another proxy's droplet (its holder died): move it here",
    holdsLease: true,
    reserved: ip(OTHER),
    step: { kind: "assign", code: "failover", from: OTHER },
  },
  {
    name: "an action is running: wait, never stack a second one",
    holdsLease: true,
    reserved: ip(OTHER, true),
    step: { kind: "wait", code: "locked" },
  },
  {
    name: "the account has no such address",
    holdsLease: true,
    reserved: undefined,
    step: { kind: "missing" },
  },
];

describe("reservedIpStep(): what the lease holder does with the reserved IP", () => {
  for (const row of table)
    it(row.name, () => {
      assert.deepEqual(
        reservedIpStep({ holdsLease: row.holdsLease, reserved: row.reserved, selfDropletId: SELF }),
        row.step,
      );
    });
});
