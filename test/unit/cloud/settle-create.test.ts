import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import type { CloudDroplet, CloudProvider } from "../../../src/cloud/provider.js";
import { settleUnknownCreates } from "../../../src/cloud/settle-create.js";
import { ApiError } from "../../../src/errors.js";
import type { BackendRow } from "../../../src/inventory/backends.js";
import { type Inventory, openInventory } from "../../../src/inventory/open.js";

const TAG = "doproxy-pool-0123456789ab";

function droplet(id: number, name: string, tags = [TAG]): CloudDroplet {
  return {
    id,
    name,
    status: "new",
    tags,
    privateIp: undefined,
    publicIp: undefined,
    createdAt: "",
    vcpus: 1,
  };
}

/** A provider whose list answers come from `answers` in turn (the last repeats); counts the lists. */
function fakeProvider(answers: Array<CloudDroplet[] | Error>): CloudProvider & { lists: number } {
  const provider = {
    description: "fake",
    ownerTag: TAG,
    lists: 0,
    listOwned: async () => {
      const answer = answers[Math.min(provider.lists++, answers.length - 1)] as CloudDroplet[] | Error;
      if (answer instanceof Error) throw answer;
      return answer;
    },
  };
  return provider as unknown as CloudProvider & { lists: number };
}

/** A fake clock: sleeping advances it; every wait is recorded. */
function clock(start = 1_000_000) {
  let now = start;
  const waits: number[] = [];
  return {
    now: () => now,
    sleep: async (ms: number) => {
      waits.push(ms);
      now += ms;
    },
    waits,
  };
}

async function withInventory(body: (inventory: Inventory) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), "doproxy-settle-"));
  const inventory = await openInventory({ path: path.join(dir, "inventory.db") });
  try {
    await body(inventory);
  } finally {
    await inventory.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function unknownRows(inventory: Inventory, names: string[]): Promise<BackendRow[]> {
  const rows: BackendRow[] = [];
  for (const name of names) rows.push(await inventory.backends.addProvisioning(name, "added by hand"));
  await inventory.backends.markCreateUnknown(
    rows.map((r) => r.id),
    "create outcome unknown: 503",
  );
  return rows;
}

describe("settleUnknownCreates (droplets add after an ambiguous create)", () => {
  it("finds a droplet that shows up late by tag and name, backing off 1 s, 2 s, 4 s ...; closes the one that never does at the deadline", async () => {
    await withInventory(async (inventory) => {
      const [a, b] = await unknownRows(inventory, ["doproxy-a", "doproxy-b"]);
      const c = clock();
      const provider = fakeProvider([
        [],
        [droplet(5, "doproxy-b", ["doproxy"])], // same name, not this pool's: never taken
        [droplet(5, "doproxy-b", ["doproxy"]), droplet(6, "doproxy-a")],
      ]);
      const seen: string[] = [];
      const waiting: number[] = [];
      const settled = await settleUnknownCreates(
        provider,
        inventory.backends,
        [a as BackendRow, b as BackendRow],
        {
          deadline: c.now() + 30_000,
          now: c.now,
          sleep: c.sleep,
          onSettled: (s) => seen.push(`${s.row.name}:${s.outcome}`),
          onWaiting: (pending) => waiting.push(pending),
        },
      );
      assert.deepEqual(waiting, [2, 2, 1, 1, 1], "each wait says how many are still unfound");
      assert.deepEqual(
        settled.map((s) => s.outcome),
        ["created", "not-created"],
      );
      assert.deepEqual(seen, ["doproxy-a:created", "doproxy-b:not-created"]);
      assert.deepEqual(
        c.waits,
        [1_000, 2_000, 4_000, 8_000, 15_000],
        "backoff capped at 15 s, ending at the deadline",
      );
      assert.equal(provider.lists, 6, "one list per lookup covers every row");
      const rowA = await inventory.backends.get((a as BackendRow).id);
      assert.equal(rowA?.dropletId, 6);
      assert.equal(rowA?.createOutcome, null);
      const rowB = await inventory.backends.get((b as BackendRow).id);
      assert.equal(rowB?.state, "removed");
      assert.equal(rowB?.closeReason, "never-created");
    });
  });

  it("lookups that fail until the deadline leave the outcome unknown and the rows open", async () => {
    await withInventory(async (inventory) => {
      const [a] = await unknownRows(inventory, ["doproxy-a"]);
      const c = clock();
      const provider = fakeProvider([new ApiError("cannot reach the API", { reason: "network" })]);
      const settled = await settleUnknownCreates(provider, inventory.backends, [a as BackendRow], {
        deadline: c.now() + 5_000,
        now: c.now,
        sleep: c.sleep,
      });
      assert.equal(settled[0]?.outcome, "unknown");
      const row = await inventory.backends.get((a as BackendRow).id);
      assert.equal(row?.state, "provisioning");
      assert.equal(row?.createOutcome, "unknown");
    });
  });

  it("a row another process settled meanwhile is reported as it left it; a droplet id already known is never taken twice", async () => {
    await withInventory(async (inventory) => {
      const [a, b] = await unknownRows(inventory, ["doproxy-a", "doproxy-b"]);
      await inventory.backends.setDropletId((a as BackendRow).id, 9); // serve's reconciliation got there first
      const c = clock();
      const provider = fakeProvider([[droplet(9, "doproxy-b")]]); // id 9 is already backend a's
      const settled = await settleUnknownCreates(
        provider,
        inventory.backends,
        [a as BackendRow, b as BackendRow],
        {
          deadline: c.now(),
          now: c.now,
          sleep: c.sleep,
        },
      );
      assert.deepEqual(
        settled.map((s) => (s.outcome === "created" ? `created ${s.dropletId}` : s.outcome)),
        ["created 9", "not-created"],
      );
    });
  });
});
