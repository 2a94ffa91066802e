import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import http from "node:http";
import { after, before, describe, it } from "node:test";
import Database from "better-sqlite3";
import WebSocket, { WebSocketServer } from "ws";
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
import { waitFor } from "../helpers/wait.js";

/** Adds backends through the CLI (as an operator would) and waits until serve routes to all. */
async function addBackends(ws: Workspace, port: number, backends: TestBackend[]): Promise<void> {
  for (const backend of backends) {
    const result = await runCliAsync(ws, ["droplets", "add", "--address", backend.address]);
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, /active \(in rotation\)/);
  }
  await waitFor(async () => {
    const seen = new Set<string>();
    for (let i = 0; i < backends.length * 3; i++)
      seen.add((await request(port, "/probe")).headers["x-backend"] as string);
    return seen.size === backends.length;
  }, "every backend in rotation");
}

describe("doproxy serve: proxying", () => {
  let ws: Workspace;
  let serve: Daemon;
  let port: number;
  let a: TestBackend;
  let b: TestBackend;
  let c: TestBackend;

  before(async () => {
    port = await freePort();
    ws = workspace(serveConfig(port, { proxy: 'timeout = "400ms"\nconnect-timeout = "300ms"' }));
    a = await startBackend({ name: "a" });
    b = await startBackend({ name: "b" });
    c = await startBackend({ name: "c" });
    serve = await startServe(ws);
    await addBackends(ws, port, [a, b, c]);
  });

  after(async () => {
    await serve?.stop();
    await Promise.all([a, b, c].map((x) => x?.close()));
    ws?.cleanup();
  });

  it("round-robin spreads requests evenly", async () => {
    const tally = await tallyByBackend(port, 300, 1);
    assert.deepEqual(Object.values(tally).sort(), [100, 100, 100]);
  });

  it("forwards X-Forwarded-* and drops hop-by-hop headers", async () => {
    const reply = await request(port, "/headers", {
      headers: {
        connection: "keep-alive, x-secret-hop",
        "x-secret-hop": "1",
        "keep-alive": "timeout=5",
        "x-forwarded-for": "203.0.113.9",
        "x-app": "kept",
      },
    });
    const seen = JSON.parse(reply.headers["x-echo-headers"] as string) as Record<string, string>;
    assert.equal(seen["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    assert.equal(seen["x-forwarded-proto"], "http");
    assert.equal(seen["x-forwarded-host"], `127.0.0.1:${port}`);
    assert.equal(seen["x-secret-hop"], undefined, "a header named in Connection is not forwarded");
    assert.equal(seen["keep-alive"], undefined);
    assert.equal(seen["x-app"], "kept");
    assert.equal(seen.host, `127.0.0.1:${port}`, "the client's Host reaches the backend");
  });

  it("proxies WebSocket upgrades both ways", async () => {
    const wss = new WebSocketServer({ port: 0, host: "127.0.0.1" });
    wss.on("connection", (socket) => socket.on("message", (data) => socket.send(`echo:${data}`)));
    await new Promise((resolve) => wss.once("listening", resolve));
    const wsPort = (wss.address() as { port: number }).port;
    // A WebSocket-capable backend: health on HTTP, upgrades on the same port.
    const httpServer = http.createServer((_req, res) => res.end("ok"));
    httpServer.on("upgrade", (req, socket, head) =>
      wss.handleUpgrade(req, socket, head, (client) => wss.emit("connection", client, req)),
    );
    await new Promise<void>((resolve) => httpServer.listen(0, "127.0.0.1", resolve));
    const wsBackend = `127.0.0.1:${(httpServer.address() as { port: number }).port}`;
    const wsWs = workspace(serveConfig(await freePort()));
    const wsPortProxy = Number(/127\.0\.0\.1:(\d+)/.exec(readFileSync(wsWs.configFile, "utf8"))?.[1]);
    const daemon = await startServe(wsWs);
    try {
      assert.equal((await runCliAsync(wsWs, ["droplets", "add", "--address", wsBackend])).status, 0);
      const client = new WebSocket(`ws://127.0.0.1:${wsPortProxy}/chat`);
      const messages: string[] = [];
      client.on("message", (data) => messages.push(String(data)));
      await new Promise((resolve, reject) => {
        client.once("open", resolve);
        client.once("error", reject);
      });
      for (const text of ["one", "two", "three"]) client.send(text);
      await waitFor(() => messages.length === 3, "three echoes");
      assert.deepEqual(messages, ["echo:one", "echo:two", "echo:three"]);
      client.close();
    } finally {
      await daemon.stop();
      wsWs.cleanup();
      wss.close();
      httpServer.close();
      void wsPort;
    }
  });

  it("streams a 200 MB upload and download without buffering them", async () => {
    const megabytes = 200;
    const size = megabytes * 1024 * 1024;
    const sink = await startBackend({
      name: "sink",
      handler: (req, res) => {
        if (req.url !== "/upload") return false;
        const hash = createHash("sha256");
        let bytes = 0;
        req.on("data", (chunk: Buffer) => {
          hash.update(chunk);
          bytes += chunk.length;
        });
        req.on("end", () => {
          // Answer with the digest, then stream the same bytes back.
          res.setHeader("x-upload-sha256", hash.digest("hex"));
          res.setHeader("x-upload-bytes", String(bytes));
          res.setHeader("x-backend", "sink");
          const chunk = randomBytes(1024 * 1024);
          const down = createHash("sha256");
          for (let i = 0; i < megabytes; i++) down.update(chunk);
          res.setHeader("x-download-sha256", down.digest("hex"));
          let sent = 0;
          const pump = () => {
            while (sent < megabytes) {
              sent++;
              if (!res.write(chunk)) return void res.once("drain", pump);
            }
            res.end();
          };
          pump();
        });
        return true;
      },
    });
    const bigPort = await freePort();
    const bigWs = workspace(serveConfig(bigPort, { proxy: 'timeout = "60s"' }));
    const daemon = await startServe(bigWs);
    try {
      assert.equal((await runCliAsync(bigWs, ["droplets", "add", "--address", sink.address])).status, 0);
      // One small request first: what the first proxied request loads once (the backend client's
      // HTTP parser, compiled WebAssembly) is not what streaming costs.
      await waitFor(async () => (await request(bigPort, "/warm-up")).status === 200, "the sink in rotation");
      const rssBefore = residentKb(daemon.child.pid as number);
      const upload = createHash("sha256");
      const result = await new Promise<{ headers: http.IncomingHttpHeaders; digest: string; bytes: number }>(
        (resolve, reject) => {
          const req = http.request(
            {
              host: "127.0.0.1",
              port: bigPort,
              path: "/upload",
              method: "POST",
              headers: { "content-length": size },
            },
            (res) => {
              const down = createHash("sha256");
              let bytes = 0;
              res.on("data", (chunk: Buffer) => {
                down.update(chunk);
                bytes += chunk.length;
              });
              res.on("end", () => resolve({ headers: res.headers, digest: down.digest("hex"), bytes }));
            },
          );
          req.on("error", reject);
          const chunk = randomBytes(1024 * 1024);
          let sent = 0;
          const pump = () => {
            while (sent < megabytes) {
              sent++;
              upload.update(chunk);
              if (!req.write(chunk)) return void req.once("drain", pump);
            }
            req.end();
          };
          pump();
        },
      );
      assert.equal(result.headers["x-upload-bytes"], String(size));
      assert.equal(
        result.headers["x-upload-sha256"],
        upload.digest("hex"),
        "the backend received exactly what was sent",
      );
      assert.equal(result.bytes, size);
      assert.equal(
        result.digest,
        result.headers["x-download-sha256"],
        "the client received exactly what the backend sent",
      );
      const peakKb = peakResidentKb(daemon.child.pid as number);
      // Buffering either body would add at least its 200 MB. What streaming leaves is garbage the
      // collector has not reclaimed yet: 40–70 MB here, whatever the size.
      assert.ok(
        peakKb - rssBefore < 100 * 1024,
        `proxy memory grew by ${Math.round((peakKb - rssBefore) / 1024)} MB for ${2 * megabytes} MB streamed`,
      );
    } finally {
      await daemon.stop();
      await sink.close();
      bigWs.cleanup();
    }
  });

  it("records round-trip times per backend in the inventory", async () => {
    await tallyByBackend(port, 60, 4);
    const db = new Database(ws.dbFile, { readonly: true });
    try {
      const rows = await waitFor(() => {
        const found = db
          .prepare(
            `SELECT b.address, SUM(s.requests) AS requests, SUM(s.status_2xx) AS ok, MAX(s.rtt_max_ms) AS max, SUM(s.rtt_sum_ms) AS sum
             FROM samples s JOIN backends b ON b.id = s.backend_id GROUP BY b.address`,
          )
          .all() as Array<{ address: string; requests: number; ok: number; max: number; sum: number }>;
        return found.length === 3 && found.reduce((n, r) => n + r.requests, 0) >= 360 ? found : undefined;
      }, "samples flushed");
      for (const row of rows) {
        assert.ok([a.address, b.address, c.address].includes(row.address));
        assert.equal(row.ok, row.requests);
        assert.ok(row.sum > 0 && row.max > 0);
      }
      const histogram = db
        .prepare("SELECT histogram FROM samples WHERE requests > 0 LIMIT 1")
        .pluck()
        .get() as string;
      assert.match(histogram, /^\d+:\d+(,\d+:\d+)*$/);
    } finally {
      db.close();
    }
    const listed = await runCliAsync(ws, ["droplets", "list", "--json"]);
    const entries = JSON.parse(listed.stdout) as Array<{
      address: string;
      p50Ms: number;
      p95Ms: number;
      requestsPerSecond: number;
    }>;
    assert.equal(entries.length, 3);
    for (const entry of entries)
      assert.ok(entry.p95Ms > 0 && entry.p50Ms > 0 && entry.requestsPerSecond > 0, JSON.stringify(entry));
  });
});

/** Current resident memory of a process, in kB (Linux). */
function residentKb(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0);
}

/** Highest resident memory a process has had, in kB (Linux). */
function peakResidentKb(pid: number): number {
  return Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0);
}
