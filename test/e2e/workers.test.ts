import assert from "node:assert/strict";
import http from "node:http";
import { after, before, describe, it } from "node:test";
import Database from "better-sqlite3";
import WebSocket, { WebSocketServer } from "ws";
import { adminUrl } from "../helpers/admin.js";
import { freePort, startBackend, type TestBackend } from "../helpers/backend.js";
import {
  type Daemon,
  runCliAsync,
  serveConfig,
  startServe,
  type Workspace,
  workspace,
} from "../helpers/cli.js";
import { type Reply, request, tallyByBackend } from "../helpers/http.js";
import { addBackend } from "../helpers/pool.js";
import { waitFor } from "../helpers/wait.js";

/** A request on a connection of its own, so node:cluster hands it to the next worker. */
function fresh(port: number, path = "/"): Promise<Reply> {
  return request(port, path, { keepAlive: false });
}

/** Worker ids seen in the access log lines of `serve`. */
function workersInAccessLog(serve: Daemon, since = 0): Set<number> {
  return new Set(
    serve
      .logs()
      .slice(since)
      .filter((l) => l.msg === "request" && typeof l.worker === "number")
      .map((l) => l.worker as number),
  );
}

/** Sum of a Prometheus counter's samples in /metrics text. */
function counterSum(text: string, name: string): number {
  return text
    .split("\n")
    .filter((line) => line.startsWith(`${name}{`) || line.startsWith(`${name} `))
    .reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(" ") + 1)), 0);
}

describe("[proxy] workers = 2", () => {
  let ws: Workspace;
  let serve: Daemon;
  let port: number;
  const held: http.ServerResponse[] = [];
  let a: TestBackend;
  let b: TestBackend;
  let ids: number[];

  before(async () => {
    port = await freePort();
    ws = workspace(serveConfig(port, { proxy: "workers = 2" }));
    const holdSlow = (name: string) => (req: http.IncomingMessage, res: http.ServerResponse) => {
      if (req.url !== "/slow") return false;
      res.setHeader("x-backend", name);
      held.push(res);
      return true;
    };
    a = await startBackend({ name: "a", handler: holdSlow("a") });
    b = await startBackend({ name: "b", handler: holdSlow("b") });
    serve = await startServe(ws);
    ids = [await addBackend(ws, a), await addBackend(ws, b)];
  });

  after(async () => {
    if (serve?.child.exitCode === null) await serve.stop();
    await a?.close();
    await b?.close();
    ws?.cleanup();
  });

  it("spreads requests over both workers; samples and /metrics count every request once", async () => {
    const admin = await adminUrl(serve);
    const before = counterSum(await (await fetch(`${admin}/metrics`)).text(), "doproxy_requests_total");
    const mark = serve.logs().length;
    let ok = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        for (let i = 0; i < 50; i++) if ((await fresh(port)).status === 200) ok++;
      }),
    );
    assert.equal(ok, 400);
    await waitFor(() => workersInAccessLog(serve, mark).size === 2, "access log lines from both workers");

    const db = new Database(ws.dbFile, { readonly: true });
    try {
      await waitFor(
        () => (db.prepare("SELECT SUM(requests) FROM samples").pluck().get() as number) === before + 400,
        () =>
          `samples summing to ${before + 400} (have ${db.prepare("SELECT SUM(requests) FROM samples").pluck().get()})`,
      );
      const perInterval = db
        .prepare("SELECT backend_id, ts, COUNT(*) AS n FROM samples GROUP BY backend_id, ts HAVING n > 1")
        .all();
      assert.deepEqual(perInterval, [], "one row per backend per interval, whatever the workers");
    } finally {
      db.close();
    }
    const metrics = await (await fetch(`${admin}/metrics`)).text();
    assert.equal(counterSum(metrics, "doproxy_requests_total"), before + 400);
    assert.equal(
      Number(/doproxy_round_trip_seconds_count\{backend="[^"]+"\} (\d+)/.exec(metrics)?.[1]) > 0,
      true,
      "histograms merged from the workers",
    );
  });

  it("carries WebSockets through a worker", async () => {
    const wss = new WebSocketServer({ noServer: true });
    wss.on("connection", (socket) => socket.on("message", (data) => socket.send(`echo:${data}`)));
    const server = http.createServer((_req, res) => res.end("ok"));
    server.on("upgrade", (req, socket, head) =>
      wss.handleUpgrade(req, socket, head, (client) => wss.emit("connection", client, req)),
    );
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const address = `127.0.0.1:${(server.address() as { port: number }).port}`;
    const added = await runCliAsync(ws, ["droplets", "add", "--address", address]);
    assert.equal(added.status, 0, added.stderr);
    const id = Number(/backend (\d+)/.exec(added.stdout)?.[1]);
    try {
      // Round-robin over three backends: some upgrades land on the WebSocket one.
      let echoed = 0;
      for (let i = 0; i < 6 && echoed === 0; i++) {
        const client = new WebSocket(`ws://127.0.0.1:${port}/chat`);
        const opened = await new Promise<boolean>((resolve) => {
          client.once("open", () => resolve(true));
          client.once("error", () => resolve(false));
          client.once("unexpected-response", () => resolve(false));
        });
        if (!opened) continue;
        const reply = await new Promise<string>((resolve) => {
          client.once("message", (data) => resolve(String(data)));
          client.send("hello");
        });
        assert.equal(reply, "echo:hello");
        echoed++;
        client.close();
      }
      assert.equal(echoed, 1);
    } finally {
      const removed = await runCliAsync(ws, ["droplets", "remove", String(id), "--force"]);
      assert.equal(removed.status, 0, removed.stderr);
      server.closeAllConnections();
      server.close();
      wss.close();
    }
  });

  it("a backend removed from the command line leaves every worker's rotation", async () => {
    const removed = await runCliAsync(ws, ["droplets", "remove", String(ids[1])]);
    assert.equal(removed.status, 0, removed.stderr);
    const tally: Record<string, number> = {};
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        for (let i = 0; i < 25; i++) {
          const reply = await fresh(port);
          assert.equal(reply.status, 200);
          const name = reply.headers["x-backend"] as string;
          tally[name] = (tally[name] ?? 0) + 1;
        }
      }),
    );
    assert.deepEqual(tally, { a: 100 });
    ids.pop();
    ids.push(await addBackend(ws, b));
    await waitFor(async () => Object.keys(await tallyByBackend(port, 20, 4, "/")).length === 2, "b back");
  });

  it("a hot reload of the strategy reaches both workers", async () => {
    const mark = serve.logs().length;
    ws.writeConfig(serveConfig(port, { proxy: 'workers = 2\nstrategy = "least-connections"' }));
    await waitFor(
      () =>
        new Set(
          serve
            .logs()
            .slice(mark)
            .filter(
              (l) => l.msg === "proxy worker applied the configuration" && l.strategy === "least-connections",
            )
            .map((l) => l.worker),
        ).size === 2,
      "both workers applying least-connections",
    );
  });

  it("a killed worker is replaced while the other serves on", async () => {
    const serving = serve.logs().filter((l) => l.msg === "proxy worker serving");
    const victim = serving[0] as { pid: number; worker: number };
    process.kill(victim.pid, "SIGKILL");
    await serve.waitForLog(
      (l) => l.msg?.toString().startsWith("proxy worker exited") === true && l.worker === victim.worker,
      "the primary noticing the exit",
    );
    // New connections go to the worker that is left (and the replacement once it serves).
    const statuses = await Promise.all(Array.from({ length: 50 }, () => fresh(port).then((r) => r.status)));
    assert.deepEqual([...new Set(statuses)], [200]);
    const replacement = await serve.waitForLog(
      (l) => l.msg === "proxy worker serving" && (l.worker as number) > 2,
      "a replacement worker serving",
    );
    const mark = serve.logs().length;
    await waitFor(async () => {
      await fresh(port);
      return workersInAccessLog(serve, mark).has(replacement.worker as number);
    }, "the replacement taking requests");
  });

  it("SIGTERM drains every worker: requests in flight on each finish, then serve exits 0", async () => {
    held.length = 0;
    const mark = serve.logs().length;
    const slow = Array.from({ length: 4 }, () => fresh(port, "/slow"));
    await waitFor(() => held.length === 4, "four slow requests held by the backends");
    serve.child.kill("SIGTERM");
    await waitFor(
      () =>
        serve
          .logs()
          .slice(mark)
          .some((l) => l.msg === "stopping: draining requests in flight"),
      "the drain starting",
    );
    for (const res of held) res.end("done");
    const replies = await Promise.all(slow);
    assert.deepEqual(
      replies.map((r) => r.status),
      [200, 200, 200, 200],
    );
    assert.equal(await serve.exited, 0);
    assert.equal(workersInAccessLog(serve, mark).size, 2, "both workers had slow requests and drained them");
    assert.ok(!serve.logs().some((l) => l.bug === true));
  });
});
