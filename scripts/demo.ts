/**
 * `npm run demo`: autoscaling on one machine. Starts `doproxy sim` (a local DigitalOcean whose
 * droplets are real HTTP servers), `doproxy serve` with autoscaling on (min 1, max 4, short
 * windows) and a load generator (autocannon) that ramps up, holds and ramps down, while a live
 * view shows the pool by state, p95, requests/s and every scaling event. It stops by itself
 * after about two minutes and stops every process it started. All traffic stays on loopback.
 *
 * DEMO_TIME_SCALE=0.3 compresses the timeline (the test suite uses it).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import autocannon from "autocannon";
import { openInventory } from "../src/inventory/open.js";
import { launchChromium } from "./chromium.js";
import { freePort } from "./free-port.js";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const CLI = path.join(ROOT, "dist/cli/main.js");
const SCALE = Number(process.env.DEMO_TIME_SCALE ?? 1);
const TTY = Boolean(process.stdout.isTTY) && process.env.CI !== "true";
const seconds = (s: number) => Math.max(1, Math.round(s * SCALE)) * 1000;

const children: ChildProcess[] = [];
const dir = mkdtempSync(path.join(tmpdir(), "doproxy-demo-"));
let cleaned = false;

function start(args: string[], env: NodeJS.ProcessEnv, ready: string): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      cwd: dir,
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    children.push(child);
    let seen = "";
    const onData = (chunk: Buffer) => {
      if (seen.includes(ready)) return;
      seen += chunk;
      if (seen.includes(ready)) resolve(child);
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", (chunk) => {
      seen += chunk;
    });
    child.once("exit", (code) =>
      reject(new Error(`doproxy ${args[0]} exited with ${code}: ${seen.slice(-500)}`)),
    );
  });
}

async function cleanup(): Promise<void> {
  if (cleaned) return;
  cleaned = true;
  await Promise.all(
    children.map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          child.once("exit", () => resolve());
          child.kill("SIGTERM");
          setTimeout(() => child.kill("SIGKILL"), 10_000).unref();
        }),
    ),
  );
  rmSync(dir, { recursive: true, force: true });
}

function line(text: string): void {
  if (TTY) process.stdout.write(`\r\x1b[2K${text}\n`);
  else process.stdout.write(`${text}\n`);
}

async function main(): Promise<void> {
  const simPort = await freePort();
  const proxyPort = await freePort();
  const backendPort = await freePort();
  const token = "demo-token";
  writeFileSync(
    path.join(dir, "doproxy.toml"),
    `[proxy]
listen = "127.0.0.1:${proxyPort}"
strategy = "least-connections"
drain-timeout = "10s"
[health]
interval = "250ms"
healthy-after = 2
[inventory]
flush-interval = "500ms"
[admin]
listen = "127.0.0.1:0"
[digitalocean]
token = "\${DIGITALOCEAN_TOKEN}"
api-url = "http://127.0.0.1:${simPort}"
backend-port = ${backendPort}
[autoscale]
enabled = true
min = 1
max = 4
evaluate = "* * * * * *"
scale-up-latency = "200ms"
scale-up-connections = 6
scale-up-after = "${Math.max(1, Math.round(3 * SCALE))}s"
scale-up-cooldown = "${Math.max(1, Math.round(4 * SCALE))}s"
scale-down-latency = "120ms"
scale-down-connections = 2
scale-down-after = "${Math.max(1, Math.round(6 * SCALE))}s"
scale-down-cooldown = "${Math.max(1, Math.round(3 * SCALE))}s"
`,
  );
  const env = { DIGITALOCEAN_TOKEN: token, DOPROXY_LOG_LEVEL: "info" };
  console.log(`doproxy demo (working folder ${dir})`);
  console.log(
    `  doproxy sim    http://127.0.0.1:${simPort}   droplets boot in 2s, serve 4 requests at a time, 40ms each, with DigitalOcean-like list lags`,
  );
  await start(
    [
      "sim",
      "--listen",
      `127.0.0.1:${simPort}`,
      "--token",
      token,
      "--backend-port",
      String(backendPort),
      "--boot-time",
      "2s",
      "--capacity",
      "4",
      "--service-time",
      "40ms",
      // DigitalOcean's eventual consistency: new droplets lag in lists, destroyed ones linger.
      "--realistic",
    ],
    env,
    "simulator listening",
  );
  console.log(
    `  doproxy serve  http://127.0.0.1:${proxyPort}   autoscale min 1, max 4, p95 > 200ms or > 6 in flight per backend`,
  );
  const serve = await start(["serve"], env, "proxy listening");
  let admin = "";
  serve.stdout?.on("data", (chunk: Buffer) => {
    admin ||= /"url":"(http:\/\/127\.0\.0\.1:\d+)","msg":"admin listening"/.exec(String(chunk))?.[1] ?? "";
  });

  const inventory = await openInventory({ path: path.join(dir, "inventory", "doproxy.db") });
  const { backends, samples } = inventory;
  let lastEventId = 0;
  let stage = "starting";
  let maxPool = 0;
  const status = async () => {
    const live = (await backends.live()).filter((b) => b.kind === "droplet");
    const by = (state: string) => live.filter((b) => b.state === state).length;
    const window = await samples.poolWindow(Date.now() - 3_000);
    maxPool = Math.max(maxPool, live.length - by("draining"));
    const bar =
      "#".repeat(by("active")) + "+".repeat(by("provisioning") + by("joining")) + "-".repeat(by("draining"));
    return `[${bar.padEnd(6)}] active ${by("active")}  booting ${by("provisioning") + by("joining")}  draining ${by("draining")} | p95 ${window.p95Ms === undefined ? "  -  " : `${Math.round(window.p95Ms)}ms`.padStart(5)} | ${Math.round(window.requestsPerSecond).toString().padStart(4)} req/s | ${stage}`;
  };
  let viewing = false;
  const view = setInterval(async () => {
    if (viewing) return;
    viewing = true;
    for (const event of (await backends.events.list(0)).filter((e) => e.id > lastEventId)) {
      lastEventId = event.id;
      if (event.kind.startsWith("scale.") || ["backend.active", "backend.removed"].includes(event.kind)) {
        line(
          `  ${new Date(event.ts).toISOString().slice(11, 19)}  ${event.kind.padEnd(16)} ${event.message}`,
        );
      }
    }
    if (TTY) process.stdout.write(`\r\x1b[2K${await status()}`);
    viewing = false;
  }, 500);
  const plain = TTY ? undefined : setInterval(async () => line(await status()), 5_000);

  // Wait for the first droplet (the pool is grown to min without traffic).
  const deadline = Date.now() + 60_000;
  while (!(await backends.live()).some((b) => b.state === "active") && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 250));

  const url = `http://127.0.0.1:${proxyPort}/`;
  const phases: Array<[string, number, number]> = [
    ["ramping up", 4, 6],
    ["ramping up", 12, 6],
    ["ramping up", 24, 6],
    ["holding", 32, 30],
    ["ramping down", 16, 6],
    ["ramping down", 6, 6],
    ["ramping down", 2, 6],
  ];
  let total = 0;
  let failed = 0;
  for (const [name, connections, duration] of phases) {
    stage = `${name}: ${connections} clients`;
    line(`load: ${stage}`);
    const result = await autocannon({ url, connections, duration: seconds(duration) / 1000 });
    total += result.requests.total;
    failed += result.errors + result.timeouts + result.non2xx;
    if (name === "ramping down" && connections === 6 && process.env.DEMO_SCREENSHOT)
      await screenshot(admin, process.env.DEMO_SCREENSHOT);
  }
  stage = "idle: waiting for the pool to shrink back to min";
  line(`load: stopped; ${total} requests, ${failed} failed`);
  const idleUntil = Date.now() + seconds(45);
  while (Date.now() < idleUntil) {
    const live = (await backends.live()).filter((b) => b.kind === "droplet");
    if (live.length === 1 && live[0]?.state === "active") break;
    await new Promise((r) => setTimeout(r, 500));
  }
  clearInterval(view);
  if (plain) clearInterval(plain);
  line(await status());
  const scaleEvents = (await backends.events.list(0)).filter(
    (e) => e.kind === "scale.up" || e.kind === "scale.down",
  ).length;
  await inventory.close();
  console.log(
    `\ndemo done: pool grew to ${maxPool} droplets under load and went back to min; ${scaleEvents} scaling decisions; ${failed} of ${total} requests failed`,
  );
  if (failed > 0) process.exitCode = 1;
}

/** Saves the dashboard as a headless Chromium sees it (for docs/operations.md's docs/dashboard.png). */
async function screenshot(adminUrl: string, file: string): Promise<void> {
  const browser = await launchChromium();
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    await page.goto(adminUrl);
    await page.waitForFunction(() => document.querySelectorAll("#backends tbody tr").length > 0);
    await page.waitForTimeout(1_500); // one more refresh, so every chart has its latest points
    await page.screenshot({ path: file, fullPage: true });
    line(`screenshot: ${file}`);
  } finally {
    await browser.close();
  }
}

process.on("SIGINT", () => {
  void cleanup().then(() => process.exit(130));
});
try {
  await main();
} catch (error) {
  console.error(`demo failed: ${(error as Error).message}`);
  process.exitCode = 1;
} finally {
  await cleanup();
}
