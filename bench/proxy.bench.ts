/**
 * `npm run bench`: drives the same load through doproxy (recording and health checks on, then
 * recording off, then with two workers), bare proxies (http-proxy-3 as written in a few lines,
 * with a keep-alive agent, and one on undici, the client doproxy forwards with), nginx when
 * installed, and the backend directly — all in one run on this machine, so the ratios compare
 * like with like. The backend is nginx when installed (as cheap as a backend gets, so the proxies
 * get the cores), else a small Node server. Each target is measured at saturation (closed loop)
 * and paced below it. Only loopback addresses are used; every run is bounded in time.
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
/** Paced runs: each connection waits this long after an answer (64 connections: about 6k req/s). */
const PACE_MS = Number(process.env.BENCH_PACE_MS ?? 10);

interface Target {
  name: string;
  url: string;
}
interface Result extends LoadResult {
  name: string;
  paced: LoadResult;
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
    stdoutFile: path.join(dir, "doproxy.log"),
  });
  return { name, url: `http://127.0.0.1:${port}/` };
}

async function measure(target: Target, seconds: number): Promise<Result> {
  const saturated = await measureLoad(target.url, CONNECTIONS, seconds);
  const paced = await measureLoad(target.url, CONNECTIONS, seconds, PACE_MS);
  return { name: target.name, ...saturated, paced };
}

/** Whether 127.0.0.1:`port` is taken (a server started listening there), polled for at most 5 s. */
async function waitForPort(port: number): Promise<boolean> {
  for (let i = 0; i < 100; i++) {
    const taken = await new Promise<boolean>((resolve) => {
      const probe = createServer().listen(port, "127.0.0.1");
      probe.once("listening", () => probe.close(() => resolve(false)));
      probe.once("error", () => resolve(true));
    });
    if (taken) return true;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return false;
}

/** Starts nginx (one worker) in `dir` with the given `http { }` body; false when not installed or not listening. */
async function startNginxWith(dir: string, port: number, http: string): Promise<boolean> {
  const nginx = which("nginx");
  if (!nginx) return false;
  execFileSync("mkdir", ["-p", dir]);
  writeFileSync(
    path.join(dir, "nginx.conf"),
    `daemon off; worker_processes 1; pid ${dir}/nginx.pid; error_log ${dir}/error.log;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000; ${http} }`,
  );
  track(spawn(nginx, ["-c", path.join(dir, "nginx.conf"), "-p", dir], { stdio: "ignore" }));
  // nginx prints nothing when ready: wait until the port accepts connections.
  return waitForPort(port);
}

/** The backend: nginx answering 64 bytes when installed, else bench/backend-server.ts. */
async function startBackend(port: number): Promise<string> {
  const body = "x".repeat(64);
  const nginx = await startNginxWith(
    path.join(scratch, "backend"),
    port,
    `server { listen 127.0.0.1:${port};
      location /health { return 200 "ok"; }
      location / { default_type text/plain; return 200 "${body}"; } }`,
  );
  if (nginx) return "nginx (1 worker)";
  await startBackendServer(port);
  return "Node http server";
}

async function startNginxProxy(backendPort: number): Promise<Target | undefined> {
  const port = await freePort();
  const started = await startNginxWith(
    path.join(scratch, "nginx"),
    port,
    `upstream backend { server 127.0.0.1:${backendPort}; keepalive 128; }
  server { listen 127.0.0.1:${port};
    location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; } }`,
  );
  return started ? { name: "nginx (1 worker, keep-alive)", url: `http://127.0.0.1:${port}/` } : undefined;
}

async function main(): Promise<void> {
  const backendPort = await freePort();
  const backendKind = await startBackend(backendPort);
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
  const bareUndiciPort = await freePort();
  await bareProxy(bareUndiciPort, "undici");
  targets.push({ name: "bare undici Pool", url: `http://127.0.0.1:${bareUndiciPort}/` });
  targets.push(await startDoproxy("doproxy (recording on)", backendPort, {}));
  targets.push(await startDoproxy("doproxy (recording off)", backendPort, { DOPROXY_RECORDING: "off" }));
  targets.push(await startDoproxy("doproxy (workers = 2)", backendPort, {}, "workers = 2"));
  const nginx = await startNginxProxy(backendPort);
  if (nginx) targets.push(nginx);

  console.log(
    `load: ${LOAD_GENERATOR}, ${CONNECTIONS} connections, ${SECONDS}s per target and mode, best of ${ROUNDS} rounds; backend: ${backendKind}, 64-byte answers; ${availableParallelism()} cores`,
  );
  console.log(
    `saturated: each connection sends again as soon as it is answered; paced: ${PACE_MS} ms after (the same offered load for every target)\n`,
  );
  const best = new Map<string, Result>();
  for (let round = 0; round < ROUNDS; round++) {
    for (const target of targets) {
      await measureLoad(target.url, CONNECTIONS, 1); // warm-up: connections, JIT
      const result = await measure(target, SECONDS);
      const previous = best.get(target.name);
      if (!previous) best.set(target.name, result);
      else
        best.set(target.name, {
          ...(result.rps > previous.rps ? result : previous),
          paced: result.paced.p99 < previous.paced.p99 ? result.paced : previous.paced,
        });
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
    Math.round(r.paced.rps).toString(),
    `${r.paced.p50}`,
    `${r.paced.p99}`,
    String(r.errors + r.paced.errors),
  ]);
  const head = [
    "target",
    "req/s",
    "p50 ms",
    "p99 ms",
    "vs bare",
    "vs direct",
    "paced req/s",
    "paced p50",
    "paced p99",
    "errors",
  ];
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
  const undici = best.get("bare undici Pool") as Result;
  console.log(
    `doproxy vs a bare proxy on the same client (undici): ${(on.rps / undici.rps).toFixed(2)}x — what doproxy's own work costs`,
  );
  console.log(
    `doproxy p99: ${on.p99} ms saturated, ${on.paced.p99} ms paced at ${Math.round(on.paced.rps)} req/s (target < 10 ms)`,
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
