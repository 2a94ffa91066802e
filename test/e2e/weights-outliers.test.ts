import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { adminUrl, getJson } from "../helpers/admin.js";
import { freePort, startBackend, type TestBackend } from "../helpers/backend.js";
import {
  type Daemon,
  runCliAsync,
  serveConfig,
  startServe,
  type Workspace,
  workspace,
} from "../helpers/cli.js";
import { request, tallyByBackend } from "../helpers/http.js";
import { addBackend, shareOf } from "../helpers/pool.js";
import { simSection, startSim } from "../helpers/sim.js";
import { waitFor } from "../helpers/wait.js";

describe("weights and slow start", () => {
  const cleanup: Array<() => Promise<unknown> | unknown> = [];
  after(async () => {
    for (const step of cleanup.reverse()) await step();
  });

  it("a 3:1 weight gives a 3:1 split; droplets set --weight changes it in a running serve", async () => {
    const port = await freePort();
    const ws: Workspace = workspace(serveConfig(port));
    const big = await startBackend({ name: "big" });
    const small = await startBackend({ name: "small" });
    const serve: Daemon = await startServe(ws);
    cleanup.push(
      () => ws.cleanup(),
      () => big.close(),
      () => small.close(),
      () => serve.stop(),
    );
    const bigId = await addBackend(ws, big, ["--weight", "3"]);
    await addBackend(ws, small);

    const tally = await tallyByBackend(port, 2000, 4);
    assert.ok(Math.abs(shareOf(tally, "big") - 0.75) < 0.03, `split ${JSON.stringify(tally)}`);

    const listed = await runCliAsync(ws, ["droplets", "list", "--json"]);
    const rows = JSON.parse(listed.stdout) as Array<{ address: string; weight: number }>;
    assert.deepEqual(
      rows.map((r) => [r.address, r.weight]),
      [
        [big.address, 3],
        [small.address, 1],
      ],
    );
    const table = await runCliAsync(ws, ["droplets", "list"]);
    assert.match(table.stdout, /WEIGHT/);

    const set = await runCliAsync(ws, ["droplets", "set", String(bigId), "--weight", "1"]);
    assert.equal(set.status, 0, set.stderr);
    assert.match(set.stdout, /weight 3 -> 1/);
    const changedAt = Date.now();
    await waitFor(async () => {
      const now = await tallyByBackend(port, 200, 2);
      return Math.abs(shareOf(now, "big") - 0.5) < 0.05;
    }, "an even split after the weight change");
    // The inventory poll runs every 250 ms: a change shows well within a second on an idle machine.
    assert.ok(Date.now() - changedAt < 15_000);
    const events = await runCliAsync(ws, ["events", "--json"]);
    assert.match(events.stdout, /weight 3 -> 1: set by hand/);

    const bad = await runCliAsync(ws, ["droplets", "set", String(bigId), "--weight", "0"]);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /--weight 0: expected a whole number from 1 to 1000/);
    const unknown = await runCliAsync(ws, ["droplets", "set", "999", "--weight", "2"]);
    assert.notEqual(unknown.status, 0);
    assert.match(unknown.stderr, /999/);
  });

  it("a backend that joins during slow-start takes a small share first, then its full share", async () => {
    const port = await freePort();
    const ws = workspace(serveConfig(port, { proxy: 'slow-start = "6s"' }));
    const old = await startBackend({ name: "old" });
    const fresh = await startBackend({ name: "fresh" });
    const serve = await startServe(ws);
    cleanup.push(
      () => ws.cleanup(),
      () => old.close(),
      () => fresh.close(),
      () => serve.stop(),
    );
    await addBackend(ws, old);
    // `old` is in rotation once `droplets add` returns; let its own slow start pass first.
    const oldActive = Date.now();
    await waitFor(() => Date.now() - oldActive > 6_500, "old past its slow start", 15_000, 100);

    await addBackend(ws, fresh, ["--no-wait"]);
    const timeline: Array<{ at: number; name: string }> = [];
    const deadline = Date.now() + 30_000;
    let firstFresh: number | undefined;
    await Promise.all(
      [0, 1].map(async () => {
        while (Date.now() < deadline && (firstFresh === undefined || Date.now() < firstFresh + 8_000)) {
          const reply = await request(port, "/");
          const name = reply.headers["x-backend"] as string;
          const at = Date.now();
          if (name === "fresh") firstFresh ??= at;
          timeline.push({ at, name });
        }
      }),
    );
    assert.ok(firstFresh !== undefined, "fresh came into rotation");
    const share = (from: number, to: number) => {
      const slice = timeline.filter((t) => t.at >= from && t.at < to);
      return { share: slice.filter((t) => t.name === "fresh").length / slice.length, n: slice.length };
    };
    const early = share(firstFresh, firstFresh + 1_500);
    const late = share(firstFresh + 6_500, firstFresh + 8_000);
    assert.ok(early.share < 0.3, `early share ${JSON.stringify(early)} should be small`);
    assert.ok(late.share > 0.4, `late share ${JSON.stringify(late)} should be about half`);
  });
});

describe("outlier ejection", () => {
  const cleanup: Array<() => Promise<unknown> | unknown> = [];
  after(async () => {
    for (const step of cleanup.reverse()) await step();
  });

  /** A backend whose answers are 500 while `broken` says so; its health path always passes. */
  async function flaky(name: string, broken: { now: boolean }): Promise<TestBackend> {
    return startBackend({
      name,
      handler: (_req, res) => {
        if (!broken.now) return false;
        res.statusCode = 500;
        res.setHeader("x-backend", name);
        res.end("broken");
        return true;
      },
    });
  }

  it("ejects a backend answering 500 while its health path passes, and takes it back after a good trial", async () => {
    const port = await freePort();
    const ws = workspace(
      serveConfig(port, { health: 'eject-after = 3\neject-time = "1s"\nmax-eject-time = "4s"' }),
    );
    const broken = { now: true };
    const a = await startBackend({ name: "a" });
    const b = await startBackend({ name: "b" });
    const bad = await flaky("bad", broken);
    const serve = await startServe(ws);
    cleanup.push(
      () => ws.cleanup(),
      () => a.close(),
      () => b.close(),
      () => bad.close(),
      () => serve.stop(),
    );
    for (const backend of [a, b, bad]) await addBackend(ws, backend);
    const admin = await adminUrl(serve);

    const statuses: number[] = [];
    for (let i = 0; i < 12; i++) statuses.push((await request(port, "/")).status);
    assert.equal(statuses.filter((s) => s === 500).length, 3, `eject-after = 3: ${statuses}`);
    assert.equal(bad.started, 3);

    const ejected = await waitFor(async () => {
      const { body } = await getJson<Array<{ address: string; ejected: boolean; ejections: number }>>(
        `${admin}/api/backends`,
      );
      return body.find((row) => row.address === bad.address && row.ejected);
    }, "the bad backend marked ejected in /api/backends");
    assert.equal(ejected.ejections, 1);
    const metrics = await (await fetch(`${admin}/metrics`)).text();
    assert.match(
      metrics,
      new RegExp(`doproxy_outlier_ejections_total\\{backend="${bad.address}",reason="outlier-5xx"\\} 1`),
    );
    assert.match(metrics, /doproxy_backends_ejected 1/);

    // Its trial after the first second fails: ejected again, for twice as long.
    await waitFor(
      async () => {
        await request(port, "/");
        return serve.logs().some((l) => l.code === "outlier-trial-failed");
      },
      "a failed trial request",
      15_000,
      100,
    );
    broken.now = false;
    await waitFor(
      async () => {
        await request(port, "/");
        return serve.logs().some((l) => l.code === "outlier-returned");
      },
      "the backend returned after a good trial",
      20_000,
      100,
    );
    const tally = await tallyByBackend(port, 90, 1, "/");
    assert.deepEqual(Object.keys(tally).sort(), ["a", "b", "bad"], "back in rotation");

    const events = JSON.parse(
      (await runCliAsync(ws, ["events", "--json", "--since", "10m"])).stdout,
    ) as Array<{
      kind: string;
      code: string | null;
    }>;
    const outlierCodes = events.filter(
      (e) => e.kind.startsWith("backend.e") || e.kind === "backend.returned",
    );
    assert.deepEqual(
      outlierCodes.map((e) => e.code),
      ["outlier-5xx", "outlier-trial-failed", "outlier-returned"],
    );
  });

  it("never ejects more than max-ejected-percent of the pool, and never the last backend", async () => {
    const port = await freePort();
    const ws = workspace(
      serveConfig(port, { health: 'eject-after = 2\neject-time = "1m"\nmax-ejected-percent = 50' }),
    );
    const broken = { now: true };
    const good = await startBackend({ name: "good" });
    const bads = [await flaky("bad1", broken), await flaky("bad2", broken), await flaky("bad3", broken)];
    const serve = await startServe(ws);
    cleanup.push(
      () => ws.cleanup(),
      () => good.close(),
      () => serve.stop(),
    );
    for (const backend of bads) cleanup.push(() => backend.close());
    for (const backend of [good, ...bads]) await addBackend(ws, backend);
    const admin = await adminUrl(serve);

    for (let i = 0; i < 40; i++) await request(port, "/");
    const { body } = await getJson<Array<{ address: string; ejected: boolean }>>(`${admin}/api/backends`);
    assert.equal(body.filter((row) => row.ejected).length, 2, JSON.stringify(body));
    assert.ok(body.find((row) => row.address === good.address && !row.ejected));
    assert.ok(
      serve.logs().some((l) => l.code === "max-ejected"),
      "the kept backend is reported",
    );
  });
});

describe("weights of droplets doproxy creates", () => {
  it('[digitalocean] weight = "vcpus" weighs each droplet by its size; --weight overrides it', async () => {
    const ws = workspace("");
    const sim = await startSim(ws, ["--boot-time", "200ms", "--service-time", "1ms"]);
    const env = { DIGITALOCEAN_TOKEN: sim.token };
    try {
      const base = simSection(sim).replace(
        "[digitalocean]\n",
        '[digitalocean]\nsize = "s-2vcpu-2gb"\nweight = "vcpus"\n',
      );
      ws.writeConfig(serveConfig(await freePort(), { rest: base }));
      const byVcpus = await runCliAsync(ws, ["droplets", "add", "--no-wait"], env);
      assert.equal(byVcpus.status, 0, byVcpus.stderr);
      const byHand = await runCliAsync(ws, ["droplets", "add", "--no-wait", "--weight", "5"], env);
      assert.equal(byHand.status, 0, byHand.stderr);
      const rows = JSON.parse((await runCliAsync(ws, ["droplets", "list", "--json"], env)).stdout) as Array<{
        weight: number;
      }>;
      assert.deepEqual(
        rows.map((r) => r.weight),
        [2, 5],
      );
    } finally {
      await sim.daemon.stop();
      ws.cleanup();
    }
  });
});
