/**
 * `npm run bench`, memory cases: the proxy's RSS while it holds 10,000 idle keep-alive client
 * connections (per connection), and its RSS over a 3-minute run at 64 connections (the growth).
 * Loopback only; every phase is bounded in count and time.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import autocannon from "autocannon";
import { freePort } from "../scripts/free-port.js";
import { CLI, configWithBackend, ROOT, startBackendServer, stopChildren, track } from "./children.js";

const IDLE_CONNECTIONS = Number(process.env.BENCH_IDLE_CONNECTIONS ?? 10_000);
const RSS_SECONDS = Number(process.env.BENCH_RSS_SECONDS ?? 180);
const scratch = mkdtempSync(path.join(tmpdir(), "doproxy-bench-memory-"));

function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) / 1024;
}

/** Opens `count` connections, each sending one keep-alive request and then staying idle. */
async function openIdle(port: number, count: number): Promise<net.Socket[]> {
  const sockets: net.Socket[] = [];
  const request = "GET / HTTP/1.1\r\nHost: bench\r\nConnection: keep-alive\r\n\r\n";
  for (let i = 0; i < count; i += 200) {
    const batch = await Promise.all(
      Array.from(
        { length: Math.min(200, count - i) },
        (_, k) =>
          new Promise<net.Socket>((resolve, reject) => {
            // Spread over loopback source addresses so 10,000 connections never exhaust one's ports.
            const socket = net.connect({
              host: "127.0.0.1",
              port,
              localAddress: `127.0.3.${1 + ((i + k) % 200)}`,
            });
            socket.once("error", reject);
            socket.once("connect", () => socket.write(request));
            socket.once("data", () => resolve(socket));
            socket.setTimeout(30_000, () => reject(new Error("no answer within 30 s")));
          }),
      ),
    );
    sockets.push(...batch);
  }
  return sockets;
}

async function main(): Promise<void> {
  const backendPort = await freePort();
  await startBackendServer(backendPort);
  const port = await freePort();
  const config = configWithBackend(scratch, port, backendPort);
  // The access log of 10,000 requests and three minutes of load is not what is measured here.
  const proxy = await new Promise<ChildProcess>((resolve, reject) => {
    const child = track(
      spawn(process.execPath, [CLI, "serve", "--config", config], {
        cwd: ROOT,
        env: { ...process.env, DOPROXY_LOG_LEVEL: "warn" },
        stdio: ["ignore", "ignore", "inherit"],
      }),
    );
    child.once("exit", (code) => reject(new Error(`serve exited with ${code}`)));
    const poll = async () => {
      for (let i = 0; i < 100; i++) {
        const ok = await fetch(`http://127.0.0.1:${port}/`).then(
          (r) => r.ok,
          () => false,
        );
        if (ok) return resolve(child);
        await new Promise((r) => setTimeout(r, 100));
      }
      reject(new Error("serve did not start proxying"));
    };
    void poll();
  });
  const pid = proxy.pid as number;

  // Idle connections.
  await autocannon({ url: `http://127.0.0.1:${port}/`, connections: 16, duration: 2 }); // warm-up
  const before = rssMb(pid);
  const sockets = await openIdle(port, IDLE_CONNECTIONS);
  await new Promise((r) => setTimeout(r, 2_000));
  const held = rssMb(pid);
  for (const socket of sockets) socket.destroy();
  console.log(
    `idle keep-alive connections: ${sockets.length.toLocaleString("en")} held; proxy RSS ${before.toFixed(0)} MB -> ${held.toFixed(0)} MB, ${(((held - before) * 1024 * 1024) / sockets.length / 1024).toFixed(1)} KB per connection`,
  );

  // RSS over a long run at 64 connections.
  const samples: Array<{ at: number; rss: number }> = [];
  const began = Date.now();
  const sampler = setInterval(
    () => samples.push({ at: (Date.now() - began) / 1000, rss: rssMb(pid) }),
    10_000,
  );
  const result = await autocannon({
    url: `http://127.0.0.1:${port}/`,
    connections: 64,
    duration: RSS_SECONDS,
  });
  clearInterval(sampler);
  const first = samples.find((s) => s.at >= 60) ?? samples[0];
  const last = samples[samples.length - 1];
  console.log(
    `RSS over ${RSS_SECONDS} s at 64 connections (${Math.round(result.requests.average)} req/s, ${result.errors + result.non2xx} errors): ${samples.map((s) => s.rss.toFixed(0)).join(" ")} MB every 10 s; from ${first?.at.toFixed(0)} s to the end: ${first && last ? (last.rss - first.rss).toFixed(1) : "?"} MB`,
  );
}

main()
  .catch((error) => {
    console.error(error);
    process.exitCode = 1;
  })
  .finally(() => {
    stopChildren();
    rmSync(scratch, { recursive: true, force: true });
  });
