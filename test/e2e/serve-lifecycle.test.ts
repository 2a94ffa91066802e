import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import https from "node:https";
import path from "node:path";
import { describe, it } from "node:test";
import Database from "better-sqlite3";
import { freePort, startBackend } from "../helpers/backend.js";
import { CLI, runCliAsync, serveConfig, startServe, workspace } from "../helpers/cli.js";
import { request, tallyByBackend } from "../helpers/http.js";
import { waitFor } from "../helpers/wait.js";

describe("doproxy serve: hot reload and shutdown", () => {
  it("applies strategy and listen changes while serving and keeps the last good configuration on a broken edit", async () => {
    const port = await freePort();
    const ws = workspace(serveConfig(port));
    const fast = await startBackend({ name: "fast", delayMs: 1 });
    const slow = await startBackend({ name: "slow", delayMs: 60 });
    const serve = await startServe(ws);
    try {
      for (const backend of [fast, slow])
        assert.equal((await runCliAsync(ws, ["droplets", "add", "--address", backend.address])).status, 0);
      const rr = await tallyByBackend(port, 200, 8);
      assert.ok(
        Math.abs((rr.fast ?? 0) - (rr.slow ?? 0)) <= 8,
        `round-robin splits evenly: ${JSON.stringify(rr)}`,
      );

      const reloads = () => serve.logs().filter((l) => l.msg === "configuration reloaded").length;
      ws.writeConfig(serveConfig(port, { proxy: 'strategy = "least-connections"' }));
      await waitFor(() => reloads() === 1, "reload to least-connections");
      const lc = await tallyByBackend(port, 400, 8);
      // The property, not a tight ratio: on a loaded machine the "fast" backend is slower too, so
      // the split is less extreme than on an idle one (about 3:1 instead of 10:1), but it must be
      // clearly uneven, towards the idle backend.
      assert.ok(
        (lc.fast ?? 0) > 2 * (lc.slow ?? 0),
        `least-connections favours the idle backend: ${JSON.stringify(lc)}`,
      );

      ws.writeConfig(serveConfig(port, { proxy: 'strategy = "latency"' }));
      await waitFor(() => reloads() === 2, "reload to latency");
      const lat = await tallyByBackend(port, 400, 4);
      assert.ok(
        (lat.fast ?? 0) > 2 * (lat.slow ?? 0),
        `latency favours the fast backend: ${JSON.stringify(lat)}`,
      );

      // A broken edit: reported, and the proxy keeps serving with the last good configuration.
      ws.writeConfig(serveConfig(port, { proxy: 'strategy = "random"' }));
      const failed = await serve.waitForLog(
        (l) => l.msg === "configuration reload failed; keeping the last good configuration",
        "the broken edit reported",
      );
      assert.match(String(failed.error), /doproxy\.toml:\d+: \[proxy\] strategy = "random"/);
      // An emptied file (a truncate before a write) is never applied as "all defaults".
      ws.writeConfig("");
      await serve.waitForLog(
        (l) => /the configuration file is empty/.test(String(l.error)),
        "the empty file reported",
      );
      const still = await tallyByBackend(port, 200, 4);
      assert.ok(
        (still.fast ?? 0) > 2 * (still.slow ?? 0),
        `still the latency strategy: ${JSON.stringify(still)}`,
      );

      // A new listen address: a request in flight on the old listener completes; new ones go to the new port.
      const newPort = await freePort();
      const inFlight = request(port, "/slow-one", { keepAlive: false });
      ws.writeConfig(serveConfig(newPort, { proxy: 'strategy = "round-robin"' }));
      await serve.waitForLog((l) => l.msg === "proxy listening on new address", "the new listener");
      assert.equal((await inFlight).status, 200);
      assert.equal((await request(newPort, "/", { keepAlive: false })).status, 200);
      await assert.rejects(request(port, "/", { keepAlive: false }), /ECONNREFUSED/);
    } finally {
      await serve.stop();
      await Promise.all([fast.close(), slow.close()]);
      ws.cleanup();
    }
  });

  it("on SIGTERM stops accepting, finishes the request in flight, flushes its sample and exits 0", async () => {
    const port = await freePort();
    const ws = workspace(serveConfig(port, { inventory: 'flush-interval = "1h"' }));
    const slow = await startBackend({ name: "slow", delayMs: 1_500 });
    const serve = await startServe(ws);
    try {
      assert.equal((await runCliAsync(ws, ["droplets", "add", "--address", slow.address])).status, 0);
      const pending = request(port, "/slow", { keepAlive: false });
      await waitFor(() => slow.started === 1, "the slow request reached the backend");
      serve.child.kill("SIGTERM");
      await serve.waitForLog((l) => l.msg === "stopping: draining requests in flight", "the drain to start");
      await assert.rejects(
        request(port, "/new", { keepAlive: false }),
        /ECONNREFUSED|ECONNRESET/,
        "no new connections once stopping",
      );
      const reply = await pending;
      assert.equal(reply.status, 200);
      assert.equal(reply.body, "slow GET /slow");
      assert.equal(await serve.exited, 0);
      // Samples are flushed every hour in this config: this one was written by the shutdown.
      const db = new Database(ws.dbFile, { readonly: true });
      const requests = db.prepare("SELECT SUM(requests) FROM samples").pluck().get();
      db.close();
      assert.equal(requests, 1);
    } finally {
      await serve.stop();
      await slow.close();
      ws.cleanup();
    }
  });

  it("stops on SIGTERM even when nobody reads its log output", async () => {
    const port = await freePort();
    const ws = workspace(serveConfig(port));
    const backend = await startBackend({ name: "b" });
    // stdout is a pipe this test never reads: after ~64 KiB of access log every write would block.
    const child = spawn(process.execPath, [CLI, "serve"], {
      cwd: ws.dir,
      env: { ...process.env, DOPROXY_CONFIG: "" },
      stdio: ["ignore", "pipe", "ignore"],
    });
    child.stdout.pause();
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    try {
      await waitFor(
        async () => (await request(port, "/", { keepAlive: false }).catch(() => undefined))?.status === 503,
        "serve to answer",
      );
      assert.equal((await runCliAsync(ws, ["droplets", "add", "--address", backend.address])).status, 0);
      for (let i = 0; i < 1500; i++)
        assert.equal((await request(port, `/fill-the-log-pipe-${i}`)).status, 200);
      child.kill("SIGTERM");
      const code = await Promise.race([
        exited,
        new Promise((resolve) => setTimeout(() => resolve("still running"), 20_000)),
      ]);
      assert.equal(code, 0, "exited cleanly instead of waiting for a reader that never comes");
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
      await backend.close();
      ws.cleanup();
    }
  });

  it("speaks HTTPS when tls-cert and tls-key are set, and says so in X-Forwarded-Proto", async () => {
    const port = await freePort();
    const ws = workspace("");
    execFileSync(
      "openssl",
      [
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "key.pem",
        "-out",
        "cert.pem",
        "-days",
        "1",
        "-subj",
        "/CN=127.0.0.1",
      ],
      { cwd: ws.dir, stdio: "ignore" },
    );
    ws.writeConfig(serveConfig(port, { proxy: 'tls-cert = "cert.pem"\ntls-key = "key.pem"' }));
    const backend = await startBackend({ name: "b" });
    const serve = await startServe(ws);
    try {
      assert.equal((await runCliAsync(ws, ["droplets", "add", "--address", backend.address])).status, 0);
      const reply = await new Promise<{
        status: number;
        headers: Record<string, string | string[] | undefined>;
      }>((resolve, reject) => {
        const req = https.request(
          {
            host: "127.0.0.1",
            port,
            path: "/secure",
            ca: readFileSync(path.join(ws.dir, "cert.pem")),
            servername: "127.0.0.1",
            checkServerIdentity: () => undefined,
          },
          (res) => {
            res.resume();
            res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
          },
        );
        req.on("error", reject);
        req.end();
      });
      assert.equal(reply.status, 200);
      const seen = JSON.parse(reply.headers["x-echo-headers"] as string) as Record<string, string>;
      assert.equal(seen["x-forwarded-proto"], "https");
      await assert.rejects(
        request(port, "/plain", { keepAlive: false }),
        "plain HTTP is not served on a TLS listener",
      );
    } finally {
      await serve.stop();
      await backend.close();
      ws.cleanup();
    }
  });
});
