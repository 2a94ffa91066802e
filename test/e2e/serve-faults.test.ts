import assert from "node:assert/strict";
import { describe, it } from "node:test";
import Database from "better-sqlite3";
import { freePort, startBackend } from "../helpers/backend.js";
import { runCliAsync, serveConfig, startServe, workspace } from "../helpers/cli.js";
import { request } from "../helpers/http.js";
import { waitFor } from "../helpers/wait.js";

describe("doproxy serve: failures", () => {
  it("answers 503 when no backend is healthy", async () => {
    const port = await freePort();
    const ws = workspace(serveConfig(port));
    const serve = await startServe(ws);
    try {
      const reply = await request(port, "/");
      assert.equal(reply.status, 503);
      assert.match(reply.body, /no healthy backend/);
      assert.equal(reply.headers["retry-after"], "1");
    } finally {
      await serve.stop();
      ws.cleanup();
    }
  });

  it("answers 504 when a backend does not send headers within the timeout, and 502 when it resets", async () => {
    const port = await freePort();
    const ws = workspace(
      serveConfig(port, { proxy: 'timeout = "300ms"\nretries = 1', health: "unhealthy-after = 50" }),
    );
    const slow = await startBackend({
      name: "slow",
      delayMs: 5_000,
      handler: (req, res) => {
        if (req.url !== "/reset") return false;
        res.socket?.destroy();
        return true;
      },
    });
    const serve = await startServe(ws);
    try {
      assert.equal((await runCliAsync(ws, ["droplets", "add", "--address", slow.address])).status, 0);
      const started = Date.now();
      const timedOut = await request(port, "/hang");
      assert.equal(timedOut.status, 504);
      assert.match(timedOut.body, /did not answer within 300ms/);
      assert.ok(Date.now() - started < 4_000, "the client is not kept waiting for the backend");

      const reset = await request(port, "/reset", { method: "POST", body: "payload" });
      assert.equal(reset.status, 502);
      assert.match(reset.body, /Bad Gateway/);

      const log = await serve.waitForLog(
        (l) => l.msg === "request" && l.path === "/hang",
        "an access log line for the 504",
      );
      assert.equal(log.status, 504);
      assert.equal(log.backend, slow.address);

      const db = new Database(ws.dbFile, { readonly: true });
      const errors = await waitFor(
        () =>
          (
            db.prepare("SELECT SUM(errors) AS e, SUM(status_5xx) AS s FROM samples").get() as {
              e: number;
              s: number;
            }
          ).e >= 2 && db.prepare("SELECT SUM(errors) AS e, SUM(status_5xx) AS s FROM samples").get(),
        "errors recorded",
      );
      assert.ok((errors as { s: number }).s >= 2);
      db.close();
    } finally {
      await serve.stop();
      await slow.close();
      ws.cleanup();
    }
  });

  it("fails over with zero failed requests when a backend dies, and rejoins it when it returns", async () => {
    const port = await freePort();
    const ws = workspace(serveConfig(port, { proxy: "retries = 1" }));
    const a = await startBackend({ name: "a", delayMs: 2 });
    const b = await startBackend({ name: "b", delayMs: 2 });
    const serve = await startServe(ws);
    try {
      for (const backend of [a, b])
        assert.equal((await runCliAsync(ws, ["droplets", "add", "--address", backend.address])).status, 0);
      const failures: string[] = [];
      let done = 0;
      let killed = false;
      const total = 1500;
      await Promise.all(
        Array.from({ length: 6 }, async () => {
          while (done < total) {
            done++;
            if (done === 300 && !killed) {
              killed = true;
              void b.close();
            }
            try {
              const reply = await request(port, `/r${done}`);
              if (reply.status !== 200) failures.push(`${reply.status} ${reply.body}`);
            } catch (error) {
              failures.push((error as Error).message);
            }
          }
        }),
      );
      assert.deepEqual(failures, [], "no client request failed while a backend died");
      await serve.waitForLog(
        (l) => l.msg === "backend unhealthy" && l.backend === b.address,
        "b taken out of rotation",
      );

      const hitsBefore = b.hits;
      await b.reopen();
      await serve.waitForLog(
        (l) => l.msg === "backend active" && l.backend === b.address && l.from === "unhealthy",
        "b back in rotation",
      );
      await waitFor(async () => {
        await request(port, "/after");
        return b.hits > hitsBefore;
      }, "b serving again");
      const events = await runCliAsync(ws, ["events", "--json"]);
      const kinds = (JSON.parse(events.stdout) as Array<{ kind: string; backendId: number }>).map(
        (e) => e.kind,
      );
      assert.ok(
        kinds.includes("backend.unhealthy") &&
          kinds.lastIndexOf("backend.active") > kinds.indexOf("backend.unhealthy"),
      );
    } finally {
      await serve.stop();
      await Promise.all([a.close(), b.close().catch(() => undefined)]);
      ws.cleanup();
    }
  });

  it("removes a backend while serving with no failed request, draining it first", async () => {
    const port = await freePort();
    const ws = workspace(serveConfig(port));
    const a = await startBackend({ name: "a", delayMs: 1 });
    const b = await startBackend({ name: "b", delayMs: 400 });
    const serve = await startServe(ws);
    try {
      for (const backend of [a, b])
        assert.equal((await runCliAsync(ws, ["droplets", "add", "--address", backend.address])).status, 0);
      // A slow request is in flight on b when the removal starts; it must complete.
      const slow = (async () => {
        for (;;) {
          const reply = await request(port, "/slow");
          if (reply.headers["x-backend"] === "b") return reply;
        }
      })();
      await waitFor(() => b.started > b.hits, "a request in flight on b");
      const list = JSON.parse((await runCliAsync(ws, ["droplets", "list", "--json"])).stdout) as Array<{
        id: number;
        address: string;
      }>;
      const bId = list.find((e) => e.address === b.address)?.id as number;
      const removal = runCliAsync(ws, ["droplets", "remove", String(bId)]);
      const failures: number[] = [];
      for (let i = 0; i < 100; i++) {
        const reply = await request(port, "/during");
        if (reply.status !== 200) failures.push(reply.status);
      }
      const slowReply = await slow;
      assert.equal(slowReply.status, 200, "the request in flight finished");
      const removed = await removal;
      assert.equal(removed.status, 0, removed.stderr);
      assert.match(removed.stdout, /draining/);
      assert.match(removed.stdout, /removed/);
      assert.deepEqual(failures, []);
      const hitsAfter = b.hits;
      for (let i = 0; i < 20; i++) assert.equal((await request(port, "/after")).headers["x-backend"], "a");
      assert.equal(b.hits, hitsAfter, "a removed backend gets no traffic");
    } finally {
      await serve.stop();
      await Promise.all([a.close(), b.close()]);
      ws.cleanup();
    }
  });

  it("accepts many concurrent droplets add commands while serve writes the inventory", async () => {
    const port = await freePort();
    const ws = workspace(serveConfig(port, { inventory: 'flush-interval = "50ms"' }));
    const backends = await Promise.all(Array.from({ length: 16 }, (_, i) => startBackend({ name: `b${i}` })));
    const serve = await startServe(ws);
    // Traffic keeps serve flushing samples (a write every 50ms) while the commands run.
    let traffic = true;
    const load = (async () => {
      const stopAt = Date.now() + 30_000;
      while (traffic && Date.now() < stopAt) await request(port, "/").catch(() => undefined);
    })();
    try {
      const results = await Promise.all(
        backends.map((b) => runCliAsync(ws, ["droplets", "add", "--no-wait", "--address", b.address])),
      );
      assert.deepEqual(results.map((r) => r.stderr.trim()).filter(Boolean), [], "no command failed");
      assert.ok(results.every((r) => r.status === 0));
      const listed = JSON.parse((await runCliAsync(ws, ["droplets", "list", "--json"])).stdout) as unknown[];
      assert.equal(listed.length, 16);
    } finally {
      traffic = false;
      await load;
      await serve.stop();
      await Promise.all(backends.map((b) => b.close()));
      ws.cleanup();
    }
  });
});
