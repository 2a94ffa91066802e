import assert from "node:assert/strict";
import net from "node:net";
import { describe, it } from "node:test";
import { adminUrl } from "../helpers/admin.js";
import { freePort, startBackend } from "../helpers/backend.js";
import { cleanupAll, runCliAsync, serveConfig, startDaemon, workspace } from "../helpers/cli.js";
import { autoscaleToml } from "../helpers/config.js";
import { request } from "../helpers/http.js";
import { simSection, startSim } from "../helpers/sim.js";
import { waitFor } from "../helpers/wait.js";

/** Opens `count` uploads that announce 10 kB and then trickle one byte every 200 ms. */
function trickle(port: number, count: number): { sockets: net.Socket[]; answers: string[]; stop(): void } {
  const sockets: net.Socket[] = [];
  const answers: string[] = [];
  const timers: NodeJS.Timeout[] = [];
  for (let i = 0; i < count; i++) {
    const socket = net.connect(port, "127.0.0.1", () => {
      socket.write(`POST /upload-${i} HTTP/1.1\r\nHost: a\r\nContent-Length: 10000\r\n\r\n`);
      const timer = setInterval(() => socket.writable && socket.write("x"), 200);
      timers.push(timer);
    });
    socket.on("data", (chunk) => answers.push(chunk.toString()));
    socket.on("error", () => {});
    sockets.push(socket);
  }
  return {
    sockets,
    answers,
    stop: () => {
      for (const timer of timers) clearInterval(timer);
      for (const socket of sockets) socket.destroy();
    },
  };
}

async function scrape(url: string, name: string, labels: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name}{`) && l.includes(labels));
  return line ? Number(line.split(" ").pop()) : 0;
}

describe("slow clients", () => {
  it("a hundred trickling uploads do not scale the pool", async () => {
    const ws = workspace("");
    const sim = await startSim(ws, ["--capacity", "200", "--service-time", "5ms"]);
    const env = { DIGITALOCEAN_TOKEN: sim.token };
    const port = await freePort();
    ws.writeConfig(
      serveConfig(port, {
        proxy: 'body-idle-timeout = "30s"',
        rest: `${simSection(sim)}
${autoscaleToml({ min: 1, max: 3, "scale-up-latency": "1s", "scale-up-connections": 4, "scale-up-after": "1s", "scale-up-cooldown": "1s", "scale-down-after": "1h" })}`,
      }),
    );
    const serve = startDaemon(ws, ["serve"], env);
    let uploads: ReturnType<typeof trickle> | undefined;
    try {
      const admin = await adminUrl(serve);
      await waitFor(async () => (await request(port, "/warm")).status === 200, "the first droplet", 20_000);
      uploads = trickle(port, 100);
      await waitFor(
        async () =>
          (await scrape(admin, "doproxy_in_flight_requests", "backend=")) >= 100 ? true : undefined,
        "the hundred uploads to be in flight",
        15_000,
      );
      // Let the autoscaler look at them on several ticks, each past scale-up-after.
      const holdsBefore = await scrape(admin, "doproxy_scaling_decisions_total", 'kind="hold"');
      await waitFor(
        async () =>
          (await scrape(admin, "doproxy_scaling_decisions_total", 'kind="hold"')) >= holdsBefore + 4,
        "four autoscaler ticks while the uploads trickle",
        20_000,
      );
      const droplets = (await sim.state()).droplets;
      assert.equal(droplets.length, 1, `the pool grew: ${JSON.stringify(droplets.map((d) => d.name))}`);
      const decisions = await runCliAsync(ws, ["events", "--since", "1h", "--json"], env);
      console.log(decisions.stdout.slice(0, 3000));
      const kinds = (JSON.parse(decisions.stdout) as Array<{ kind: string }>).map((e) => e.kind);
      assert.ok(!kinds.includes("scale.up"), `scaled up: ${kinds.join(", ")}`);
      assert.equal(serve.child.exitCode, null);
    } finally {
      uploads?.stop();
      await serve.stop();
      await sim.daemon.stop();
      cleanupAll(ws);
    }
  });

  it("caps the requests one client may have in flight", async () => {
    const ws = workspace("");
    const port = await freePort();
    const sink = await startBackend({ name: "sink" });
    ws.writeConfig(serveConfig(port, { proxy: "max-in-flight-per-client = 10" }));
    const serve = startDaemon(ws, ["serve"]);
    let uploads: ReturnType<typeof trickle> | undefined;
    try {
      await serve.waitForLog((l) => l.msg === "proxy listening", "serve to listen");
      assert.equal((await runCliAsync(ws, ["droplets", "add", "--address", sink.address])).status, 0);
      await waitFor(async () => (await request(port, "/ready")).status === 200, "the backend in rotation");
      uploads = trickle(port, 10);
      await waitFor(() => sink.started >= 10, "ten uploads at the backend");
      const eleventh = await request(port, "/one-more");
      assert.equal(eleventh.status, 429);
      assert.equal(eleventh.headers["retry-after"], "1");
      uploads.stop();
      await waitFor(async () => (await request(port, "/after")).status === 200, "the cap to free up");
    } finally {
      uploads?.stop();
      await serve.stop();
      await sink.close();
      cleanupAll(ws);
    }
  });
});
