/**
 * `npm run bench`: drives the same load through doproxy (recording and health checks on, then
 * recording off, then with two workers), a bare http-proxy-3 proxy (as written in a few lines, and with a keep-alive
 * agent), nginx when installed, and the backend directly — all in one run on this machine, so the
 * ratios compare like with like. Only loopback addresses are used; every run is bounded in time.
 */
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { availableParallelism, tmpdir } from "node:os";
import path from "node:path";
import { freePort } from "../scripts/free-port.js";
import { CLI, configWithBackend, startBackendServer, startChild, stopChildren, track } from "./children.js";
import { LOAD_GENERATOR, type LoadResult, measureLoad, WRK, which } from "./load.js";

const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 64);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 6);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);

interface Target {
  name: string;
  url: string;
}
interface Result extends LoadResult {
  name: string;
}

const scratch = mkdtempSync(path.join(tmpdir(), "doproxy-bench-"));

async function startDoproxy(
  name: string,
  backendPort: number,
  env: NodeJS.ProcessEnv,
  proxyKeys = "",
): Promise<Target> {
  const port = await freePort();
  const dir = path.join(scratch, name);
  execFileSync("mkdir", ["-p", dir]);
  const config = configWithBackend(dir, port, backendPort, proxyKeys);
  await startChild(process.execPath, [CLI, "serve", "--config", config], {
    env,
    ready: (line) => line.includes('"backend active"'),
  });
  return { name, url: `http://127.0.0.1:${port}/` };
}

async function measure(target: Target, seconds: number): Promise<Result> {
  return { name: target.name, ...(await measureLoad(target.url, CONNECTIONS, seconds)) };
}

async function startNginx(backendPort: number): Promise<Target | undefined> {
  const nginx = which("nginx");
  if (!nginx) return undefined;
  const port = await freePort();
  const dir = path.join(scratch, "nginx");
  execFileSync("mkdir", ["-p", dir]);
  writeFileSync(
    path.join(dir, "nginx.conf"),
    `daemon off; worker_processes 1; pid ${dir}/nginx.pid; error_log ${dir}/error.log;
events { worker_connections 4096; }
http { access_log off;
  upstream backend { server 127.0.0.1:${backendPort}; keepalive 128; }
  server { listen 127.0.0.1:${port};
    location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; } } }`,
  );
  track(spawn(nginx, ["-c", path.join(dir, "nginx.conf"), "-p", dir], { stdio: "ignore" }));
  // nginx prints nothing when ready: wait until the port accepts connections (bounded).
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = createServer().listen(port, "127.0.0.1");
      socket.once("listening", () => socket.close(() => resolve(false)));
      socket.once("error", () => resolve(true));
    });
    if (ok) return { name: "nginx (1 worker, keep-alive)", url: `http://127.0.0.1:${port}/` };
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return undefined;
}

async function main(): Promise<void> {
  const backendPort = await freePort();
  await startBackendServer(backendPort);
  const targets: Target[] = [{ name: "backend directly", url: `http://127.0.0.1:${backendPort}/` }];
  // bench/bare-proxy.ts prints "{}" once it listens.
  const bareProxy = (port: number, ...mode: string[]) =>
    startChild(
      process.execPath,
      ["--import", "tsx", "bench/bare-proxy.ts", String(port), `http://127.0.0.1:${backendPort}`, ...mode],
      { ready: (line) => line.startsWith("{") },
    );
  const barePort = await freePort();
  await bareProxy(barePort);
  targets.push({ name: "bare http-proxy-3", url: `http://127.0.0.1:${barePort}/` });
  const bareKaPort = await freePort();
  await bareProxy(bareKaPort, "keepalive");
  targets.push({ name: "bare http-proxy-3 + keep-alive agent", url: `http://127.0.0.1:${bareKaPort}/` });
  targets.push(await startDoproxy("doproxy (recording on)", backendPort, {}));
  targets.push(await startDoproxy("doproxy (recording off)", backendPort, { DOPROXY_RECORDING: "off" }));
  targets.push(await startDoproxy("doproxy (workers = 2)", backendPort, {}, "workers = 2"));
  const nginx = await startNginx(backendPort);
  if (nginx) targets.push(nginx);

  console.log(
    `load: ${LOAD_GENERATOR}, ${CONNECTIONS} connections, ${SECONDS}s per target, best of ${ROUNDS} rounds, one 64-byte backend, ${availableParallelism()} cores\n`,
  );
  const best = new Map<string, Result>();
  for (let round = 0; round < ROUNDS; round++) {
    for (const target of targets) {
      await measure(target, 1); // warm-up: connections, JIT
      const result = await measure(target, SECONDS);
      const previous = best.get(target.name);
      if (!previous || result.rps > previous.rps) best.set(target.name, result);
    }
  }
  const bare = best.get("bare http-proxy-3") as Result;
  const direct = best.get("backend directly") as Result;
  const rows = [...best.values()].map((r) => [
    r.name,
    Math.round(r.rps).toString(),
    `${r.p50}`,
    `${r.p99}`,
    (r.rps / bare.rps).toFixed(2),
    (r.rps / direct.rps).toFixed(2),
    String(r.errors),
  ]);
  const head = ["target", "req/s", "p50 ms", "p99 ms", "vs bare", "vs direct", "errors"];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] as string).length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === 0 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number)))
      .join("  ");
  console.log(line(head));
  for (const row of rows) console.log(line(row));
  const on = best.get("doproxy (recording on)") as Result;
  const off = best.get("doproxy (recording off)") as Result;
  const bareKeepAlive = best.get("bare http-proxy-3 + keep-alive agent") as Result;
  console.log(
    `\ndoproxy vs bare http-proxy-3 with a keep-alive agent: ${(on.rps / bareKeepAlive.rps).toFixed(2)}x (target >= 1.00); vs bare without one: ${(on.rps / bare.rps).toFixed(2)}x`,
  );
  console.log(`recording cost: ${(((off.rps - on.rps) / off.rps) * 100).toFixed(1)}% (target <= 5%)`);
  const two = best.get("doproxy (workers = 2)") as Result;
  console.log(`workers 2 vs workers 1: ${(two.rps / on.rps).toFixed(2)}x`);
  if (!WRK) console.log("wrk: not installed (apt-get install wrk to use it as the load generator)");
  if (!nginx) console.log("nginx: not installed (apt-get install nginx-light to include it)");
}

try {
  await main();
} finally {
  stopChildren();
  rmSync(scratch, { recursive: true, force: true });
}
