import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { waitFor } from "./wait.js";

export const ROOT = fileURLToPath(new URL("../../", import.meta.url));
export const CLI = path.join(ROOT, "dist/cli/main.js");

/** A scratch folder with a doproxy.toml, removed by cleanup(). */
export interface Workspace {
  dir: string;
  configFile: string;
  dbFile: string;
  writeConfig(toml: string): void;
  cleanup(): void;
}

export function workspace(toml = ""): Workspace {
  const dir = mkdtempSync(path.join(tmpdir(), "doproxy-test-"));
  const configFile = path.join(dir, "doproxy.toml");
  const ws: Workspace = {
    dir,
    configFile,
    dbFile: path.join(dir, "inventory", "doproxy.db"),
    writeConfig: (text) => writeFileSync(configFile, text),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
  ws.writeConfig(toml);
  return ws;
}

export interface RunResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a one-shot doproxy command to completion. */
export function runCli(ws: Workspace, args: string[], env: NodeJS.ProcessEnv = {}): RunResult {
  const result = spawnSync(process.execPath, [CLI, ...args], {
    cwd: ws.dir,
    env: { ...process.env, ...env, DOPROXY_CONFIG: "" },
    encoding: "utf8",
    timeout: 60_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** Runs a one-shot doproxy command without blocking the test's event loop (servers in-process keep answering). */
export function runCliAsync(ws: Workspace, args: string[], env: NodeJS.ProcessEnv = {}): Promise<RunResult> {
  return runAsync(process.execPath, [CLI, ...args], { cwd: ws.dir, env: { ...env, DOPROXY_CONFIG: "" } });
}

/** Runs a command to completion without blocking the event loop, collecting its output. */
export function runAsync(
  command: string,
  args: string[],
  options: { cwd: string; env?: NodeJS.ProcessEnv },
): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd: options.cwd, env: { ...process.env, ...options.env } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk) => {
      stdout += chunk;
    });
    child.stderr.on("data", (chunk) => {
      stderr += chunk;
    });
    child.on("close", (status) => resolve({ status, stdout, stderr }));
  });
}

/** A long-running doproxy process (serve, sim) whose JSON log lines are collected. */
export interface Daemon {
  child: ChildProcess;
  output(): string;
  logs(): Array<Record<string, unknown>>;
  waitForLog(
    predicate: (line: Record<string, unknown>) => boolean,
    what: string,
    timeoutMs?: number,
  ): Promise<Record<string, unknown>>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  exited: Promise<number | null>;
}

/** Every daemon a test started: killed when the test process exits, even after a failed assertion. */
const daemons = new Set<ChildProcess>();
process.once("exit", () => {
  for (const child of daemons)
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
});

export function startDaemon(ws: Workspace, args: string[], env: NodeJS.ProcessEnv = {}): Daemon {
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd: ws.dir,
    env: { ...process.env, DOPROXY_LOG_LEVEL: "debug", ...env, DOPROXY_CONFIG: "" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout?.on("data", (chunk) => {
    out += chunk;
  });
  child.stderr?.on("data", (chunk) => {
    out += chunk;
  });
  daemons.add(child);
  child.once("exit", () => daemons.delete(child));
  // "close" comes after the output pipes are drained, so an exit's last words are kept.
  let closed = false;
  const exited = new Promise<number | null>((resolve) =>
    child.on("close", (code) => {
      closed = true;
      resolve(code);
    }),
  );
  const logs = () =>
    out
      .split("\n")
      .filter((line) => line.startsWith("{"))
      .map((line) => {
        try {
          return JSON.parse(line) as Record<string, unknown>;
        } catch {
          return {};
        }
      });
  return {
    child,
    exited,
    output: () => out,
    logs,
    waitForLog: (predicate, what, timeoutMs = 30_000) =>
      waitFor(
        () => {
          const found = logs().find(predicate);
          if (!found && closed) throw new Error(`doproxy exited with ${child.exitCode}`);
          return found;
        },
        () => `${what}\n--- output ---\n${out.slice(-3000)}`,
        timeoutMs,
      ),
    stop: async (signal = "SIGTERM") => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const code = await exited;
      // An error that escaped every handler is a bug (logged with bug: true), whatever the test checked.
      const bugs = logs().filter((line) => line.bug === true);
      if (bugs.length > 0)
        throw new Error(`doproxy logged a bug:\n${JSON.stringify(bugs, null, 1).slice(0, 3000)}`);
      return code;
    },
  };
}

/** Starts `doproxy serve` in a workspace and waits until it listens; returns the daemon and its port. */
export async function startServe(ws: Workspace, env: NodeJS.ProcessEnv = {}): Promise<Daemon> {
  const daemon = startDaemon(ws, ["serve"], env);
  await daemon.waitForLog((line) => line.msg === "proxy listening", "serve to listen");
  return daemon;
}

/** A minimal doproxy.toml for tests: loopback, short health intervals, fast flushes. */
export function serveConfig(
  port: number,
  extra: { proxy?: string; health?: string; inventory?: string; admin?: string; rest?: string } = {},
): string {
  const sections: Record<string, string> = {
    proxy: `listen = "127.0.0.1:${port}"\ndrain-timeout = "5s"`,
    health: 'interval = "100ms"\ntimeout = "300ms"\nhealthy-after = 1\nunhealthy-after = 2',
    inventory: 'flush-interval = "200ms"',
    admin: 'listen = "127.0.0.1:0"',
  };
  let text = "";
  for (const [name, base] of Object.entries(sections)) {
    text += `[${name}]\n${mergeKeys(base, extra[name as keyof typeof extra] ?? "")}\n`;
  }
  return text + (extra.rest ?? "");
}

/** TOML lines of `base` with every key that `override` sets replaced by its value there. */
function mergeKeys(base: string, override: string): string {
  const keyOf = (line: string) => /^\s*([\w-]+)\s*=/.exec(line)?.[1];
  const overridden = new Set(override.split("\n").map(keyOf).filter(Boolean));
  return [...base.split("\n").filter((line) => !overridden.has(keyOf(line))), ...override.split("\n")].join(
    "\n",
  );
}

export function cleanupAll(...items: Array<{ cleanup(): void } | undefined>): void {
  for (const item of items) {
    try {
      item?.cleanup();
    } catch {
      // best effort
    }
  }
}

export { rmSync };

/** One backend as `droplets list --json` shows it. */
export interface ListedBackend {
  id: number;
  kind: string;
  name: string | null;
  address: string | null;
  dropletId: number | null;
  state: string;
}

/** `doproxy droplets list --json` (with `--all`, removed rows too); fails the test on a non-zero exit. */
export async function listBackends(
  ws: Workspace,
  env: NodeJS.ProcessEnv,
  all = false,
): Promise<ListedBackend[]> {
  const result = await runCliAsync(ws, ["droplets", "list", "--json", ...(all ? ["--all"] : [])], env);
  if (result.status !== 0) throw new Error(`droplets list exited ${result.status}: ${result.stderr}`);
  return JSON.parse(result.stdout) as ListedBackend[];
}

/** Stops each daemon that was started, in order. */
export async function stopAll(...daemons: Array<Daemon | undefined>): Promise<void> {
  for (const daemon of daemons) await daemon?.stop();
}
