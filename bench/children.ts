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

/**
 * Starts `command args` and resolves once a line of its stdout satisfies `ready` (at once without
 * one). Its stdout is drained for its whole life, so a chatty child never blocks on a full pipe;
 * its stderr goes to ours. An exit before it is ready rejects.
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
  if (options.stdoutFile)
    return startChildLoggingToFile(command, args, { ...options, stdoutFile: options.stdoutFile });
  return new Promise((resolve, reject) => {
    const child = track(
      spawn(command, args, {
        cwd: options.cwd ?? ROOT,
        env: { ...process.env, ...options.env },
        stdio: ["ignore", "pipe", "inherit"],
      }),
    );
    const ready = options.ready;
    let buffered = "";
    let resolved = ready === undefined;
    if (resolved) resolve(child);
    child.stdout?.on("data", (chunk) => {
      if (resolved) return;
      buffered += chunk;
      if (ready && buffered.split("\n").some(ready)) {
        resolved = true;
        resolve(child);
      }
    });
    child.once("exit", (code) => reject(new Error(`${command} ${args.join(" ")} exited with ${code}`)));
  });
}

function startChildLoggingToFile(
  command: string,
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; ready?: (line: string) => boolean; stdoutFile: string },
): Promise<ChildProcess> {
  const out = openSync(options.stdoutFile, "a");
  const child = track(
    spawn(command, args, {
      cwd: options.cwd ?? ROOT,
      env: { ...process.env, ...options.env },
      stdio: ["ignore", out, "inherit"],
    }),
  );
  closeSync(out);
  const ready = options.ready;
  if (!ready) return Promise.resolve(child);
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + 60_000;
    const onExit = (code: number | null) => {
      clearInterval(poll);
      reject(new Error(`${command} ${args.join(" ")} exited with ${code}`));
    };
    child.once("exit", onExit);
    const poll = setInterval(() => {
      if (readFileSync(options.stdoutFile, "utf8").split("\n").some(ready)) {
        clearInterval(poll);
        child.off("exit", onExit);
        resolve(child);
      } else if (Date.now() > deadline) {
        clearInterval(poll);
        reject(new Error(`${command} ${args.join(" ")} was not ready within 60 s`));
      }
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
