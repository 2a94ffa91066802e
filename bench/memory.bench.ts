/**
 * `npm run bench`, memory cases: the proxy's RSS while it holds 10,000 idle keep-alive client
 * connections (per connection), and its RSS over a 3-minute run at 64 connections (the growth),
 * with what V8's young-generation collections promoted during that run (from the proxy's own
 * `--trace-gc-nvp` lines). Loopback only; every phase is bounded in count and time.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import autocannon from "autocannon";
import { freePort } from "../scripts/free-port.js";
import { CLI, configWithBackend, ROOT, startBackendServer, stopChildren, track } from "./children.js";

const IDLE_CONNECTIONS = Number(process.env.BENCH_IDLE_CONNECTIONS ?? 10_000);
const RSS_SECONDS = Number(process.env.BENCH_RSS_SECONDS ?? 180);
const scratch = mkdtempSync(path.join(tmpdir(), "doproxy-bench-memory-"));
/** The proxy's stdout: with the log at warn, only V8's `--trace-gc-nvp` lines. */
const gcTrace = path.join(scratch, "gc-trace.log");
/**
 * Mean bytes promoted per scavenge above which something dead is keeping request objects alive
 * (docs/architecture.md, "Garbage the young generation cannot drop"): 25-30 KB when healthy,
 * 1.4-1.5 MB when a Set with per-request churn did it.
 */
const PROMOTED_LIMIT_KB = 200;

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

interface Scavenges {
  count: number;
  promotedKb: number;
  pauseMs: number;
  fullCollections: number;
}

/** The scavenges (`gc=s`) and full collections (`gc=mc`) in `--trace-gc-nvp` lines. */
function summariseGcTrace(lines: string[]): Scavenges {
  let count = 0;
  let promoted = 0;
  let pause = 0;
  let fullCollections = 0;
  for (const line of lines) {
    if (line.includes(" gc=mc ")) fullCollections++;
    if (!line.includes(" gc=s ")) continue;
    count++;
    promoted += Number(/ promoted=(\d+)/.exec(line)?.[1] ?? 0);
    pause += Number(/ pause=([\d.]+)/.exec(line)?.[1] ?? 0);
  }
  return {
    count,
    promotedKb: count ? promoted / count / 1024 : 0,
    pauseMs: count ? pause / count : 0,
    fullCollections,
  };
}

const traceLines = () => readFileSync(gcTrace, "utf8").split("\n");

async function main(): Promise<void> {
  const backendPort = await freePort();
  await startBackendServer(backendPort);
  const port = await freePort();
  const config = configWithBackend(scratch, port, backendPort);
  // The access log of 10,000 requests and three minutes of load is not what is measured here.
  const traceFile = openSync(gcTrace, "a");
  const proxy = await new Promise<ChildProcess>((resolve, reject) => {
    const child = track(
      spawn(process.execPath, ["--trace-gc-nvp", CLI, "serve", "--config", config], {
        cwd: ROOT,
        env: { ...process.env, DOPROXY_LOG_LEVEL: "warn" },
        stdio: ["ignore", traceFile, "inherit"],
      }),
    );
    closeSync(traceFile);
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
  const traceBefore = traceLines().length;
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
  // V8 writes its trace through stdio buffers: stop the proxy so every line is in the file.
  await new Promise((resolve) => {
    proxy.once("exit", resolve);
    proxy.kill("SIGTERM");
  });
  const gc = summariseGcTrace(traceLines().slice(traceBefore));
  console.log(
    `young-generation collections over that run: ${gc.count}, ${gc.promotedKb.toFixed(0)} KB promoted and ${gc.pauseMs.toFixed(2)} ms each on average (target < ${PROMOTED_LIMIT_KB} KB: more means dead objects keep requests alive); full collections: ${gc.fullCollections}`,
  );
  if (gc.count === 0 || gc.promotedKb >= PROMOTED_LIMIT_KB) process.exitCode = 1;
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
