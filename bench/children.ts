/**
 * The child processes a benchmark starts (backends, proxies, the simulator), shared by every
 * `bench/*.bench.ts`: each is started the same way, waited for the same way, and all are stopped
 * together when the benchmark ends.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { closeSync, openSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("../", import.meta.url));
export const CLI = path.join(ROOT, "dist/cli/main.js");

const children: ChildProcess[] = [];

/** Registers a child started elsewhere (nginx, a proxy polled for readiness) to be stopped at the end. */
export function track(child: ChildProcess): ChildProcess {
  children.push(child);
  return child;
}

/** Stops every child this benchmark started. */
export function stopChildren(): void {
  for (const child of children) child.kill("SIGTERM");
}

/** How long a child may take to print its ready line. */
const READY_WITHIN_MS = 60_000;

/**
 * Starts `command args` and resolves once a line of its stdout satisfies `ready` (at once without
 * one). Its stdout is drained for its whole life, so a chatty child never blocks on a full pipe,
 * or goes to `stdoutFile`; its stderr goes to ours. An exit before it is ready rejects, and so
 * does a minute without the ready line.
 */
export function startChild(
  command: string,
  args: string[],
  options: {
    cwd?: string;
    env?: NodeJS.ProcessEnv;
    ready?: (line: string) => boolean;
    /**
     * Write the child's stdout to this file instead of a pipe this process reads: a proxy's access
     * log then costs what it costs in production (a file or journald), and this process does not
     * compete for the cores reading it. Readiness is then found by reading the file.
     */
    stdoutFile?: string;
  } = {},
): Promise<ChildProcess> {
  const stdout = options.stdoutFile ? openSync(options.stdoutFile, "a") : "pipe";
  const child = track(
    spawn(command, args, {
      cwd: options.cwd ?? ROOT,
      env: { ...process.env, ...options.env },
      stdio: ["ignore", stdout, "inherit"],
    }),
  );
  if (typeof stdout === "number") closeSync(stdout);
  const ready = options.ready;
  // What the child piped before it was ready; after that its output is read and dropped.
  let piped = "";
  let waiting = ready !== undefined;
  child.stdout?.on("data", (chunk) => {
    if (waiting) piped += chunk;
  });
  if (!ready) return Promise.resolve(child);
  const written = () => (options.stdoutFile ? readFileSync(options.stdoutFile, "utf8") : piped);
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + READY_WITHIN_MS;
    const settle = (error?: Error) => {
      waiting = false;
      clearInterval(poll);
      child.off("exit", onExit);
      if (error) reject(error);
      else resolve(child);
    };
    const onExit = (code: number | null) =>
      settle(new Error(`${command} ${args.join(" ")} exited with ${code}`));
    child.once("exit", onExit);
    const poll = setInterval(() => {
      if (written().split("\n").some(ready)) settle();
      else if (Date.now() > deadline)
        settle(new Error(`${command} ${args.join(" ")} was not ready within ${READY_WITHIN_MS / 1000} s`));
    }, 50);
  });
}

/** Starts bench/backend-server.ts (64-byte answers) on `port`; resolves once it listens. */
export function startBackendServer(port: number): Promise<ChildProcess> {
  return startChild(process.execPath, ["--import", "tsx", "bench/backend-server.ts", String(port)], {
    ready: (line) => line.startsWith("{"),
  });
}

/**
 * Writes a doproxy.toml in `dir` for a proxy on `port` with its inventory beside it, and adds the
 * benchmark backend to that inventory; returns the config's path, for `serve --config`.
 */
export function configWithBackend(dir: string, port: number, backendPort: number, proxyKeys = ""): string {
  const config = path.join(dir, "doproxy.toml");
  writeFileSync(
    config,
    `[proxy]\nlisten = "127.0.0.1:${port}"\n${proxyKeys}\n[health]\ninterval = "1s"\n[inventory]\npath = "${dir}/doproxy.db"\n[admin]\nlisten = "127.0.0.1:0"\n`,
  );
  execFileSync(process.execPath, [
    CLI,
    "droplets",
    "add",
    "--no-wait",
    "--address",
    `127.0.0.1:${backendPort}`,
    "--config",
    config,
  ]);
  return config;
}
