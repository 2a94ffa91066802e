import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import Database from "better-sqlite3";
import { freePort } from "../helpers/backend.js";
import {
  CLI,
  type ListedBackend,
  listBackends,
  runCliAsync,
  serveConfig,
  startServe,
  workspace,
} from "../helpers/cli.js";
import { request } from "../helpers/http.js";
import { simSection, startSim } from "../helpers/sim.js";
import { waitFor } from "../helpers/wait.js";

describe("doproxy droplets against doproxy sim", () => {
  it("add waits for boot and joins the pool a running serve proxies to; remove drains a request in flight, then destroys", async () => {
    const ws = workspace("");
    const sim = await startSim(ws, ["--service-time", "5ms"]);
    const env = { DIGITALOCEAN_TOKEN: sim.token };
    const port = await freePort();
    ws.writeConfig(serveConfig(port, { rest: simSection(sim) }));
    const serve = await startServe(ws);
    try {
      const added = await runCliAsync(ws, ["droplets", "add", "--count", "2"], env);
      assert.equal(added.status, 0, added.stderr + added.stdout);
      assert.match(added.stdout, /creating 2 droplets/);
      assert.match(added.stdout, /booting/);
      assert.equal(
        added.stdout.match(/active at 127\.0\.2\.\d+:\d+ \(in rotation\)/g)?.length,
        2,
        added.stdout,
      );

      // serve proxies to both new droplets within two seconds.
      const seen = await waitFor(
        async () => {
          const names = new Set<string>();
          for (let i = 0; i < 8; i++) names.add((await request(port, "/")).body.split(" ")[0] as string);
          return names.size === 2 ? names : undefined;
        },
        "both droplets serving through the proxy",
        2_000,
      );
      const entries = await listBackends(ws, env);
      assert.deepEqual([...seen].sort(), entries.map((e) => e.name).sort());
      assert.ok(entries.every((e) => e.state === "active" && e.kind === "droplet" && e.dropletId));

      // A slow request in flight on the droplet being removed completes before it is destroyed.
      await sim.faults({ serviceTimeMs: 1_500 });
      const victim = entries[0] as ListedBackend;
      const victimName = victim.name as string; // a droplet the proxy reached by name above
      const inFlight = (async () => {
        for (;;) {
          const reply = await request(port, "/slow");
          if (reply.body.startsWith(victimName)) return reply;
        }
      })();
      await waitFor(
        async () => (await sim.state()).droplets.find((d) => d.id === victim.dropletId)?.inFlight,
        "a request in flight on the victim",
      );
      const removed = await runCliAsync(ws, ["droplets", "remove", String(victim.id)], env);
      assert.equal(removed.status, 0, removed.stderr);
      assert.match(removed.stdout, /draining/);
      assert.match(removed.stdout, new RegExp(`droplet ${victim.dropletId} destroyed`));
      const reply = await inFlight;
      assert.equal(reply.status, 200, "the request in flight finished before the droplet was destroyed");
      const state = await sim.state();
      assert.equal(
        state.droplets.find((d) => d.id === victim.dropletId),
        undefined,
        "the droplet is destroyed on DigitalOcean",
      );
      await sim.faults({ serviceTimeMs: 5 });
      for (let i = 0; i < 6; i++)
        assert.doesNotMatch((await request(port, "/")).body, new RegExp(victimName));
      const events = JSON.parse((await runCliAsync(ws, ["events", "--json"], env)).stdout) as Array<{
        kind: string;
        backendId: number;
        code: string | null;
      }>;
      const victimEvents = events.filter((e) => e.backendId === victim.id);
      assert.deepEqual(
        victimEvents.map((e) => [e.kind, e.code]),
        [
          ["backend.provisioning", "create-ordered"],
          ["backend.joining", "booted"],
          ["backend.active", "health-passed"],
          ["backend.draining", "drain-by-hand"],
          ["backend.removed", "destroyed"],
        ],
      );
      assert.deepEqual(
        events.filter((e) => e.code === null),
        [],
        "every event carries a reason code",
      );

      // Refuses to remove the last active backend without --force.
      const last = (await listBackends(ws, env))[0] as ListedBackend;
      const refused = await runCliAsync(ws, ["droplets", "remove", String(last.id)], env);
      assert.equal(refused.status, 1);
      assert.match(refused.stderr, /^doproxy: \[DOPROXY_REFUSED\] .*last active backend/m);
      assert.match(refused.stderr, /^ {2}hint: .*--force/m);
      const kept = await runCliAsync(
        ws,
        ["droplets", "remove", String(last.id), "--force", "--keep-droplet"],
        env,
      );
      assert.equal(kept.status, 0, kept.stderr);
      assert.ok(
        (await sim.state()).droplets.some((d) => d.id === last.dropletId),
        "--keep-droplet leaves the droplet running",
      );
      // A released droplet can be adopted again by hand: a new backend, the old row's history kept.
      const again = await runCliAsync(ws, ["droplets", "add", "--id", String(last.dropletId)], env);
      assert.equal(again.status, 0, again.stderr);
      assert.match(again.stdout, new RegExp(`droplet ${last.dropletId} ${last.name} adopted`));
      const readopted = (await listBackends(ws, env)).find((entry) => entry.dropletId === last.dropletId);
      assert.ok(readopted && readopted.id !== last.id, "a new backend row for the same droplet");
      const unknown = await runCliAsync(ws, ["droplets", "remove", "4242"], env);
      assert.equal(unknown.status, 2);
      assert.match(unknown.stderr, /^doproxy: \[DOPROXY_USAGE\] /m);
      assert.match(unknown.stderr, /no live backend with inventory id or droplet id 4242/);
    } finally {
      await serve.stop();
      await sim.daemon.stop();
      ws.cleanup();
    }
  });

  it("list and sync see every droplet across pages (more than 20 and more than 200)", async () => {
    const ws = workspace("");
    const sim = await startSim(ws, ["--boot-time", "0ms"]);
    const env = { DIGITALOCEAN_TOKEN: sim.token };
    ws.writeConfig(serveConfig(await freePort(), { rest: simSection(sim) }));
    try {
      // The pool's identity exists from the first command on; its ownership tag marks its droplets.
      const first = JSON.parse((await runCliAsync(ws, ["droplets", "sync", "--json"], env)).stdout) as {
        pool: { ownerTag: string };
      };
      const ownerTag = first.pool.ownerTag;
      assert.match(ownerTag, /^doproxy-pool-[0-9a-f]{12}$/);
      for (let batch = 0; batch < 21; batch++) {
        const names = Array.from({ length: 10 }, (_, i) => `outside-${batch}-${i}`);
        const reply = await sim.api("POST", "/v2/droplets", {
          names,
          size: "s-1vcpu-1gb",
          image: "ubuntu-24-04-x64",
          tags: ["doproxy", ownerTag],
        });
        assert.equal(reply.status, 202);
      }
      for (const [name, tags] of [
        ["not-ours", ["other"]],
        ["another-pools", ["doproxy"]],
      ] as const) {
        await sim.api("POST", "/v2/droplets", { name, size: "s-1vcpu-1gb", image: "ubuntu-24-04-x64", tags });
      }
      const before = (await sim.requests()).length;
      const report = await runCliAsync(ws, ["droplets", "sync", "--json"], env);
      assert.equal(report.status, 0, report.stderr);
      const parsed = JSON.parse(report.stdout) as {
        applied: boolean;
        unknown: Array<{ name: string }>;
        conflicts: Array<{ name: string }>;
        foreign: Array<{ name: string }>;
      };
      assert.equal(parsed.applied, false);
      // Names this inventory never generated: an identity conflict, not something to adopt silently.
      assert.equal(parsed.unknown.length, 0);
      assert.equal(parsed.conflicts.length, 210, "all 210 droplets with the ownership tag, no other");
      assert.deepEqual(
        parsed.foreign.map((d) => d.name),
        ["another-pools"],
        "the configured tag without the ownership tag is reported, not adopted",
      );
      assert.equal((await listBackends(ws, env)).length, 0, "without --apply nothing changes");
      const listCalls = (await sim.requests())
        .slice(before)
        .filter((r) => r.method === "GET" && r.path === "/v2/droplets" && r.query.tag_name === ownerTag);
      assert.ok(
        listCalls.every((r) => r.query.per_page === "200"),
        JSON.stringify(listCalls.slice(0, 3)),
      );
      assert.deepEqual(
        listCalls.map((r) => r.query.page),
        ["1", "2"],
      );

      const refused = await runCliAsync(ws, ["droplets", "sync", "--apply"], env);
      assert.equal(refused.status, 0, refused.stderr);
      assert.match(refused.stdout, /IDENTITY CONFLICT/);
      assert.equal((await listBackends(ws, env)).length, 0, "not adopted without the operator's say-so");
      const applied = await runCliAsync(ws, ["droplets", "sync", "--apply", "--adopt-conflicts"], env);
      assert.equal(applied.status, 0, applied.stderr);
      const entries = await listBackends(ws, env);
      assert.equal(entries.length, 210);
      assert.ok(
        entries.every(
          (e) =>
            e.kind === "droplet" && e.state === "joining" && /^127\.0\.2\.\d+:\d+$/.test(e.address ?? ""),
        ),
      );
      const table = await runCliAsync(ws, ["droplets", "list"], env);
      assert.equal(table.stdout.trim().split("\n").length, 211, "a header and one line per droplet");

      // A droplet destroyed behind doproxy's back is marked removed by sync.
      const gone = entries[5] as ListedBackend;
      assert.equal((await sim.api("DELETE", `/v2/droplets/${gone.dropletId}`)).status, 204);
      const again = JSON.parse(
        (await runCliAsync(ws, ["droplets", "sync", "--apply", "--json"], env)).stdout,
      ) as { gone: Array<{ id: number }>; unknown: unknown[] };
      assert.deepEqual(
        again.gone.map((r) => r.id),
        [gone.id],
      );
      assert.equal(again.unknown.length, 0);
      assert.equal((await listBackends(ws, env)).length, 209);
    } finally {
      await sim.daemon.stop();
      ws.cleanup();
    }
  });

  it("explains every API fault: rejected token, 422, 429 waits, 5xx retries then fails, unreachable API", async () => {
    const ws = workspace("");
    const sim = await startSim(ws);
    const env = { DIGITALOCEAN_TOKEN: sim.token };
    ws.writeConfig(serveConfig(await freePort(), { rest: simSection(sim) }));
    try {
      const rejected = await runCliAsync(ws, ["droplets", "sync"], { DIGITALOCEAN_TOKEN: "not-the-token" });
      assert.equal(rejected.status, 1);
      assert.match(rejected.stderr, /^doproxy: \[DOPROXY_API\] /m);
      assert.match(rejected.stderr, /DigitalOcean rejected the API token \(401/);
      assert.match(rejected.stderr, /environment variable DIGITALOCEAN_TOKEN/);
      assert.doesNotMatch(rejected.stderr, /not-the-token/);

      const missing = await runCliAsync(ws, ["droplets", "add"], { DIGITALOCEAN_TOKEN: "" });
      assert.equal(missing.status, 2);
      assert.match(missing.stderr, /^doproxy: \[DOPROXY_CONFIG\] /m);
      assert.match(missing.stderr, /no DigitalOcean API token/);

      ws.writeConfig(serveConfig(await freePort(), { rest: `${simSection(sim)}region = "mars1"\n` }));
      const invalid = await runCliAsync(ws, ["droplets", "add"], env);
      assert.equal(invalid.status, 1);
      assert.match(invalid.stderr, /refused the create request \(422\): You specified an invalid region/);
      assert.equal((await listBackends(ws, env)).length, 0, "a refused create leaves no live row");
      ws.writeConfig(serveConfig(await freePort(), { rest: simSection(sim) }));

      await sim.faults({ failNext: { status: 429, count: 1, resetInMs: 1000 } });
      const started = Date.now();
      const limited = await runCliAsync(ws, ["droplets", "sync"], env);
      assert.equal(limited.status, 0, limited.stderr);
      assert.ok(Date.now() - started >= 900, "waited for ratelimit-reset before retrying");

      await sim.faults({ failNext: { status: 503, count: 2 } });
      const before = (await sim.requests()).length;
      const recovered = await runCliAsync(ws, ["droplets", "sync"], env);
      assert.equal(recovered.status, 0, recovered.stderr);
      assert.equal(
        (await sim.requests()).slice(before).filter((r) => r.status === 503).length,
        2,
        "two 5xx answers to a list were retried",
      );

      // A create answered 5xx may have happened: it is never sent again; lookups settle the row.
      ws.writeConfig(serveConfig(await freePort(), { rest: `${simSection(sim)}boot-timeout = "2s"\n` }));
      await sim.faults({ failNext: { status: 503, count: 1 } });
      const postsBefore = (await sim.requests()).filter((r) => r.method === "POST").length;
      const ambiguous = await runCliAsync(ws, ["droplets", "add", "--no-wait"], env);
      assert.equal(ambiguous.status, 1);
      assert.match(
        ambiguous.stdout,
        /outcome is unknown: DigitalOcean create: outcome unknown \(503[^\n]*request_id/,
      );
      assert.match(ambiguous.stdout, /not created: no droplet of that name appeared/);
      assert.match(ambiguous.stderr, /1 of 1 droplet not created/);
      assert.doesNotMatch(ambiguous.stdout + ambiguous.stderr, /try again/i);
      assert.equal(
        (await sim.requests()).filter((r) => r.method === "POST").length - postsBefore,
        1,
        "an ambiguous create is not sent twice",
      );
      assert.equal(
        (await listBackends(ws, env)).length,
        0,
        "the row is closed once lookups confirm nothing was created",
      );
      assert.equal((await sim.state()).droplets.length, 0);
      ws.writeConfig(serveConfig(await freePort(), { rest: simSection(sim) }));

      await sim.faults({ failRate: 1 });
      const failed = await runCliAsync(ws, ["droplets", "sync"], env);
      assert.equal(failed.status, 1);
      assert.match(failed.stderr, /failed after 5 attempts \(50[03]/);
      await sim.faults({ failRate: 0 });

      ws.writeConfig(
        serveConfig(await freePort(), {
          rest: simSection(sim).replace(sim.url, `http://127.0.0.1:${await freePort()}`),
        }),
      );
      const unreachable = await runCliAsync(ws, ["droplets", "sync"], env);
      assert.equal(unreachable.status, 1);
      assert.match(
        unreachable.stderr,
        /cannot reach the DigitalOcean API at http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\)/,
      );
      for (const result of [rejected, missing, invalid, limited, recovered, ambiguous, failed, unreachable]) {
        assert.doesNotMatch(
          result.stdout + result.stderr,
          new RegExp(sim.token),
          "the token never appears in output",
        );
        assert.doesNotMatch(result.stderr, /\n\s+at /, "no stack traces");
      }
    } finally {
      await sim.daemon.stop();
      ws.cleanup();
    }
  });

  it("a droplet that never becomes active: add says so and leaves it in the inventory", async () => {
    const ws = workspace("");
    const sim = await startSim(ws, ["--never-boot", "1"]);
    const env = { DIGITALOCEAN_TOKEN: sim.token, DOPROXY_BOOT_TIMEOUT_MS: "1500" };
    ws.writeConfig(serveConfig(await freePort(), { rest: simSection(sim) }));
    try {
      const added = await runCliAsync(ws, ["droplets", "add"], env);
      assert.equal(added.status, 1);
      assert.match(added.stderr, /did not boot within 2s/);
      assert.match(added.stderr, /droplets remove ID/);
      const rows = await listBackends(ws, env);
      assert.equal(rows.length, 1);
      assert.equal(rows[0]?.state, "provisioning");
      assert.equal((await sim.state()).droplets[0]?.status, "new", "still booting on DigitalOcean");
      const removed = await runCliAsync(ws, ["droplets", "remove", String(rows[0]?.id), "--force"], env);
      assert.equal(removed.status, 0, removed.stderr);
      assert.equal((await sim.state()).droplets.length, 0, "remove destroys the stuck droplet");
    } finally {
      await sim.daemon.stop();
      ws.cleanup();
    }
  });

  it("kill -9 during add never leaks a droplet: sync finds it by name", async () => {
    const ws = workspace("");
    const sim = await startSim(ws, ["--slow", "1500ms"]);
    const env = { DIGITALOCEAN_TOKEN: sim.token };
    ws.writeConfig(serveConfig(await freePort(), { rest: simSection(sim) }));
    try {
      const child = spawn(process.execPath, [CLI, "droplets", "add"], {
        cwd: ws.dir,
        env: { ...process.env, ...env },
        stdio: "ignore",
      });
      const exited = new Promise((resolve) => child.on("exit", resolve));
      // The row is written before the create call; the (slow) call is then in flight.
      await waitFor(() => {
        try {
          const db = new Database(ws.dbFile, { readonly: true });
          const row = db.prepare("SELECT state FROM backends").get();
          db.close();
          return row;
        } catch {
          return undefined;
        }
      }, "the provisioning row");
      await waitFor(
        async () => (await sim.requests()).some((r) => r.method === "POST"),
        "the create call to arrive",
      );
      child.kill("SIGKILL");
      await exited;
      await waitFor(
        async () => (await sim.state()).droplets.length === 1,
        "the droplet the killed command asked for",
      );
      await sim.faults({ slowMs: 0 });

      const before = await listBackends(ws, env);
      assert.equal(before.length, 1);
      assert.equal(before[0]?.state, "provisioning");
      assert.equal(before[0]?.dropletId, null, "the command died before it learned the droplet id");

      const synced = JSON.parse(
        (await runCliAsync(ws, ["droplets", "sync", "--apply", "--json"], env)).stdout,
      ) as { recovered: unknown[]; unknown: unknown[] };
      assert.equal(synced.recovered.length, 1);
      assert.equal(synced.unknown.length, 0, "recovered by name, not adopted twice");
      const droplet = (await sim.state()).droplets[0];
      const after = await listBackends(ws, env);
      assert.equal(after.length, 1);
      assert.equal(after[0]?.dropletId, droplet?.id);
      assert.ok(["provisioning", "joining"].includes(after[0]?.state as string));
      // The token never reaches the inventory.
      assert.doesNotMatch(readFileSync(ws.dbFile).toString("latin1"), new RegExp(sim.token));
    } finally {
      await sim.daemon.stop();
      ws.cleanup();
    }
  });
});
