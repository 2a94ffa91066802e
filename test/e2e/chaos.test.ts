import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { freePort } from "../helpers/backend.js";
import {
  cleanupAll,
  listBackends,
  runCliAsync,
  serveConfig,
  startDaemon,
  workspace,
} from "../helpers/cli.js";
import { autoscaleToml } from "../helpers/config.js";
import { request } from "../helpers/http.js";
import { prng } from "../helpers/prng.js";
import { type SimHandle, simSection, startSim } from "../helpers/sim.js";
import { waitFor } from "../helpers/wait.js";

/**
 * The autoscaler under changing load against a simulator with random API faults and lags
 * (seeded: DOPROXY_CHAOS_SEED replays a run; bounded to about two minutes). After every phase and
 * at the end, the invariants that keep a paid pool honest must hold.
 */

const SEED = Number(process.env.DOPROXY_CHAOS_SEED ?? 7);
const PHASES = Number(process.env.DOPROXY_CHAOS_PHASES ?? 10);
const PHASE_MS = 7_000;
const MIN = 1;
const MAX = 4;

interface EventRow {
  kind: string;
  data: { actions?: Array<{ kind: string; count?: number }>; dryRun?: boolean } | null;
}

type Fault = { name: string; change: Record<string, unknown>; injected429?: number };

const FAULTS: Fault[] = [
  { name: "none", change: {} },
  { name: "5xx on 30% of calls", change: { failRate: 0.3 } },
  { name: "two 503s", change: { failNext: { status: 503, count: 2 } } },
  { name: "a create accepted then answered 500", change: { acceptThenFail: 1 } },
  { name: "a burst 429", change: { failNext: { status: 429, count: 1, resetInMs: 1000 } }, injected429: 1 },
  { name: "slower list lag", change: { listLagMs: 2500 } },
  // The money-invariant faults (docs/digitalocean.md, "Money invariants").
  { name: "creates answered 3 s late", change: { createDelayMs: 3000 } },
  { name: "a DELETE of a young droplet answered 404", change: { deleteNotFoundYoungMs: 4000 } },
  {
    name: "a create reset after it took effect",
    change: { resetNext: { count: 1, path: "/v2/droplets", method: "POST", resetAfterCreate: true } },
  },
  {
    name: "an hourly 429 on lists only",
    change: { failNext: { status: 429, count: 2, path: "/v2/droplets", method: "GET", noRetryAfter: true } },
    injected429: 2,
  },
];

describe("chaos: the autoscaler against a faulty, lagging DigitalOcean", () => {
  it(`keeps every invariant (seed ${SEED}, ${PHASES} phases)`, async () => {
    const rnd = prng(SEED);
    const ws = workspace("");
    const sim: SimHandle = await startSim(ws, [
      "--list-lag",
      "1s",
      "--delete-lag",
      "5s",
      "--capacity",
      "3",
      "--service-time",
      "30ms",
      "--droplet-limit",
      "8",
    ]);
    const env = { DIGITALOCEAN_TOKEN: sim.token };
    const port = await freePort();
    // Two droplets of another pool with the default tag: never to be touched.
    for (const name of ["foreign-1", "foreign-2"])
      await sim.api("POST", "/v2/droplets", {
        name,
        size: "s-1vcpu-1gb",
        image: "ubuntu-24-04-x64",
        tags: ["doproxy"],
      });
    const foreign = (await sim.state()).droplets.map((d) => d.id);
    ws.writeConfig(
      serveConfig(port, {
        proxy: 'strategy = "least-connections"\ndrain-timeout = "10s"',
        inventory: 'flush-interval = "250ms"',
        rest: `${simSection(sim)}boot-timeout = "6s"
${autoscaleToml({ min: MIN, max: MAX, "scale-up-latency": "120ms", "scale-up-connections": 3, "scale-up-after": "1s", "scale-up-cooldown": "2s", "scale-down-latency": "60ms", "scale-down-connections": 1, "scale-down-after": "2s", "scale-down-cooldown": "2s" })}`,
      }),
    );
    const serve = startDaemon(ws, ["serve"], env);
    const failures: string[] = [];
    let clients = 0;
    let running = true;
    let injected429 = 0;
    const startedAt = Date.now();
    const workers = Array.from({ length: 16 }, async (_, i) => {
      while (running && Date.now() - startedAt < 300_000) {
        if (i >= clients) {
          await new Promise((resolve) => setTimeout(resolve, 50));
          continue;
        }
        try {
          const reply = await request(port, `/chaos-${i}`, { timeoutMs: 15_000 });
          if (reply.status !== 200) failures.push(`${reply.status} ${reply.body.trim()}`);
        } catch (error) {
          failures.push((error as Error).message);
        }
      }
    });
    const ownerTagOf = (tags: string[]) => tags.find((t) => t.startsWith("doproxy-pool-"));

    async function checkInvariants(when: string): Promise<void> {
      const state = await sim.state();
      const inventory = await listBackends(ws, env, true);
      // No droplet without the ownership tag is destroyed or sent traffic.
      for (const id of foreign) {
        const d = state.droplets.find((x) => x.id === id);
        assert.ok(d, `${when}: foreign droplet ${id} destroyed`);
        assert.equal(d.served, 0, `${when}: foreign droplet ${id} was sent traffic`);
        assert.ok(!inventory.some((r) => r.dropletId === id), `${when}: foreign droplet ${id} adopted`);
      }
      // A droplet id has at most one row: a destroyed droplet never comes back.
      const ids = inventory.filter((r) => r.dropletId !== null).map((r) => r.dropletId);
      assert.equal(new Set(ids).size, ids.length, `${when}: a droplet id has two rows`);
      // Never more than max droplets billing: every live row counts, draining and booting ones too,
      // and so does every droplet alive at the simulator at any moment since the start.
      const billing = inventory.filter((r) => r.state !== "removed").length;
      assert.ok(billing <= MAX, `${when}: ${billing} droplets billing, above max`);
      const owner = state.droplets.map((d) => ownerTagOf(d.tags)).find(Boolean);
      if (owner) {
        const ledger = (await sim.api("GET", `/_sim/billing?tag=${owner}`)).body as { peak: number };
        assert.ok(ledger.peak <= MAX, `${when}: ${ledger.peak} droplets of this pool were alive at once`);
      }
    }

    try {
      await serve.waitForLog((l) => l.msg === "proxy listening", "serve to listen");
      await waitFor(
        async () => (await request(port, "/warm")).status === 200,
        "the first droplet",
        30_000,
        250,
      );
      for (let phase = 0; phase < PHASES; phase++) {
        clients = Math.floor(rnd() * 17);
        const fault = FAULTS[Math.floor(rnd() * FAULTS.length)] as Fault;
        injected429 += fault.injected429 ?? 0;
        await sim.faults(fault.change);
        const phaseEnd = Date.now() + PHASE_MS;
        await waitFor(() => Date.now() >= phaseEnd || undefined, `phase ${phase}`, PHASE_MS + 5_000, 250);
        await sim.faults({
          failRate: 0,
          listLagMs: 1000,
          failNext: null,
          acceptThenFail: 0,
          createDelayMs: 0,
          deleteNotFoundYoungMs: 0,
          resetNext: null,
        });
        await checkInvariants(`after phase ${phase} (${clients} clients, ${fault.name})`);
      }
      clients = 0;
      // Every droplet with the ownership tag ends up in the inventory (or destroyed), settled.
      let lastSeen = "";
      await waitFor(
        async () => {
          const state = await sim.state();
          const inventory = await listBackends(ws, env, true);
          lastSeen = JSON.stringify({ inventory, droplets: state.droplets.map((d) => [d.id, d.status]) });
          const live = inventory.filter((r) => r.state !== "removed");
          const owned = state.droplets.filter((d) => ownerTagOf(d.tags));
          return (
            owned.every((d) => live.some((r) => r.dropletId === d.id)) &&
            live.every((r) => r.dropletId !== null && owned.some((d) => d.id === r.dropletId)) &&
            live.length >= MIN &&
            live.length <= MAX
          );
        },
        () => `the pool to settle: ${lastSeen}`,
        60_000,
        500,
      );
      await checkInvariants("at the end");

      // No duplicate creates: droplets created with the ownership tag <= droplets the policy asked for.
      const events = JSON.parse(
        (await runCliAsync(ws, ["events", "--since", "1h", "--json"], env)).stdout,
      ) as EventRow[];
      const asked = events
        .filter((e) => e.kind.startsWith("scale.") && e.kind !== "scale.hold" && e.kind !== "scale.error")
        .flatMap((e) => e.data?.actions ?? [])
        .filter((a) => a.kind === "create")
        .reduce((sum, a) => sum + (a.count ?? 0), 0);
      const created = (await sim.state()).created.filter((d) => ownerTagOf(d.tags)).length;
      assert.ok(created <= asked, `created ${created} droplets, the policy asked for ${asked}`);
      // doproxy never ran into the API's own rate limit (only the 429s the test injected).
      const limited = (await sim.requests()).filter((r) => r.status === 429).length;
      assert.ok(limited <= injected429, `${limited} answers of 429 with ${injected429} injected`);
      // Zero failed client requests: the faults were all on the API side.
      assert.deepEqual(failures.slice(0, 5), [], `${failures.length} failed requests`);
    } finally {
      running = false;
      await Promise.all(workers);
      await serve.stop();
      await sim.daemon.stop();
      cleanupAll(ws);
    }
  });
});
