import { freePort } from "./backend.js";
import { type Daemon, startDaemon, type Workspace } from "./cli.js";

export interface SimHandle {
  daemon: Daemon;
  url: string;
  backendPort: number;
  token: string;
  state(): Promise<{
    droplets: Array<{
      id: number;
      name: string;
      status: string;
      tags: string[];
      address: string | null;
      inFlight: number;
      served: number;
      /** Its health path answers 503 (the unhealthy / unhealthyImage faults). */
      unhealthy?: boolean;
      createdMs?: number;
    }>;
    destroyedWithInFlight: number;
    created: Array<{ id: number; name: string; tags: string[] }>;
    reservedIps: Array<{ ip: string; dropletId: number | null; locked: boolean }>;
  }>;
  requests(): Promise<
    Array<{
      ts: number;
      method: string;
      path: string;
      query: Record<string, string>;
      status: number;
      /** The connection was reset instead of answered (resetNext). */
      reset?: boolean;
    }>
  >;
  faults(change: Record<string, unknown>): Promise<void>;
  api(
    method: string,
    path: string,
    body?: unknown,
    token?: string,
  ): Promise<{ status: number; headers: Headers; body: unknown }>;
}

/** Starts `doproxy sim` as a child process with a token, on free loopback ports. */
export async function startSim(ws: Workspace, extraArgs: string[] = []): Promise<SimHandle> {
  const port = await freePort();
  const backendPort = await freePort();
  const token = `test-token-${Math.random().toString(36).slice(2)}`;
  const daemon = startDaemon(ws, [
    "sim",
    "--listen",
    `127.0.0.1:${port}`,
    "--token",
    token,
    "--backend-port",
    String(backendPort),
    "--boot-time",
    "300ms",
    ...extraArgs,
  ]);
  await daemon.waitForLog((l) => l.msg === "simulator listening", "the simulator to listen");
  const url = `http://127.0.0.1:${port}`;
  const api = async (method: string, path: string, body?: unknown, useToken = token) => {
    const response = await fetch(`${url}${path}`, {
      method,
      headers: { authorization: `Bearer ${useToken}`, "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    return { status: response.status, headers: response.headers, body: text ? JSON.parse(text) : undefined };
  };
  return {
    daemon,
    url,
    backendPort,
    token,
    state: async () => (await api("GET", "/_sim/state")).body as never,
    requests: async () => ((await api("GET", "/_sim/requests")).body as { requests: never }).requests,
    faults: async (change) => {
      await api("POST", "/_sim/faults", change);
    },
    api,
  };
}

/** doproxy.toml [digitalocean] section pointing at a simulator. */
export function simSection(sim: SimHandle): string {
  return `[digitalocean]\ntoken = "\${DIGITALOCEAN_TOKEN}"\napi-url = "${sim.url}"\nbackend-port = ${sim.backendPort}\n`;
}
