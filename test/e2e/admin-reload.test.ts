import assert from "node:assert/strict";
import http from "node:http";
import { describe, it } from "node:test";
import { getJson } from "../helpers/admin.js";
import { freePort } from "../helpers/backend.js";
import { cleanupAll, type Daemon, serveConfig, startDaemon, startServe, workspace } from "../helpers/cli.js";
import { waitFor } from "../helpers/wait.js";

/**
 * A reload of [admin]: the listener's address and its token are one decision. Every transition
 * between {loopback, all addresses} × {token, no token}, with a real `serve` and real edits of its
 * file, on one port (the hard case: 0.0.0.0:P and 127.0.0.1:P overlap).
 */

type Exposure = "loopback" | "all";
interface AdminState {
  exposure: Exposure;
  token: boolean;
}

const TOKEN_BEFORE = "before-tok-4f1a8d";
const TOKEN_AFTER = "after-tok-9c2e7b";

/**
 * Where "the network" is probed from: 127.0.0.2. Tests send traffic only to loopback, and
 * 127.0.0.2 tells a 0.0.0.0 listener (it answers there) from a 127.0.0.1 one (refused) as well as
 * an interface address would.
 */
const NETWORK = "127.0.0.2";

function describeState(state: AdminState): string {
  return `${state.exposure === "all" ? "0.0.0.0" : "127.0.0.1"}${state.token ? " + token" : " without token"}`;
}

function adminSection(state: AdminState, port: number, token: string): string {
  const host = state.exposure === "all" ? "0.0.0.0" : "127.0.0.1";
  return `listen = "${host}:${port}"${state.token ? `\ntoken = "${token}"` : ""}`;
}

/** A GET of /api/status: its status, or "refused" when nothing listens there. */
function probe(host: string, port: number, token?: string): Promise<number | "refused"> {
  return new Promise((resolve, reject) => {
    const req = http.get(
      {
        host,
        port,
        path: "/api/status",
        agent: false,
        headers: token ? { authorization: `Bearer ${token}` } : {},
        timeout: 5_000,
      },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on("timeout", () => req.destroy(new Error("probe timed out")));
    req.on("error", (error: NodeJS.ErrnoException) =>
      error.code === "ECONNREFUSED" ? resolve("refused") : reject(error),
    );
  });
}

interface Observed {
  loopback: { none: number | "refused"; before: number | "refused"; after: number | "refused" };
  network: { none: number | "refused"; before: number | "refused"; after: number | "refused" };
}

async function observe(port: number): Promise<Observed> {
  const at = async (host: string) => ({
    none: await probe(host, port),
    before: await probe(host, port, TOKEN_BEFORE),
    after: await probe(host, port, TOKEN_AFTER),
  });
  return { loopback: await at("127.0.0.1"), network: await at(NETWORK) };
}

/** What a listener for `state` whose token is `token` answers. */
function expected(state: AdminState, token: string): Observed {
  const answers = (reachable: boolean) => {
    const by = (sent: string | undefined) =>
      !reachable ? ("refused" as const) : !state.token || sent === token ? 200 : 401;
    return { none: by(undefined), before: by(TOKEN_BEFORE), after: by(TOKEN_AFTER) };
  };
  return { loopback: answers(true), network: answers(state.exposure === "all") };
}

/** Not allowed by the configuration rule: a listener on the network without a token. */
function valid(state: AdminState): boolean {
  return state.exposure === "loopback" || state.token;
}

const STATES: AdminState[] = [
  { exposure: "loopback", token: false },
  { exposure: "loopback", token: true },
  { exposure: "all", token: false },
  { exposure: "all", token: true },
];

/**
 * Asks the network address without a token, again and again, until stopped: a 200 is an admin
 * API open to the network, at whatever moment of a reload it happened.
 */
function watchForOpenings(port: number): { stop(): Promise<string[]> } {
  const openings: string[] = [];
  let running = true;
  const stopAt = Date.now() + 60_000; // bounded even if the test never stops it
  const loop = (async () => {
    while (running && Date.now() < stopAt) {
      const status = await probe(NETWORK, port).catch((error: Error) => error.message);
      if (status === 200) openings.push(new Date().toISOString());
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return openings;
    },
  };
}

async function reloadsSeen(serve: Daemon, kind: "ok" | "failed"): Promise<number> {
  const msg =
    kind === "ok"
      ? "configuration reloaded"
      : "configuration reload failed; keeping the last good configuration";
  return serve.logs().filter((l) => l.msg === msg).length;
}

describe("admin listener reload: address and token are one decision", () => {
  for (const from of STATES)
    for (const to of STATES) {
      const title = `${describeState(from)} → ${describeState(to)}`;
      it(title, async () => {
        const port = await freePort();
        const adminPort = await freePort();
        const before = serveConfig(port, { admin: adminSection(from, adminPort, TOKEN_BEFORE) });
        // The same section again for an unchanged state (the file still changes: a reload happens).
        const after = `${serveConfig(port, { admin: adminSection(to, adminPort, TOKEN_AFTER) })}# edited\n`;
        const ws = workspace(before);
        try {
          if (!valid(from)) {
            // The rule holds at start: serve refuses to open the admin API to the network.
            const refused = startDaemon(ws, ["serve"]);
            assert.equal(await refused.exited, 2, refused.output());
            assert.match(refused.output(), /non-loopback admin listener needs \[admin\] token/);
            return;
          }
          const serve = await startServe(ws);
          let openings: { stop(): Promise<string[]> } | undefined;
          try {
            await waitFor(
              async () => {
                const seen = await observe(adminPort);
                assert.deepEqual(seen, expected(from, TOKEN_BEFORE));
                return true;
              },
              `the admin listener as started (${describeState(from)})`,
            );
            openings = watchForOpenings(adminPort);
            const okBefore = await reloadsSeen(serve, "ok");
            const failedBefore = await reloadsSeen(serve, "failed");
            ws.writeConfig(after);
            if (valid(to)) {
              await waitFor(async () => (await reloadsSeen(serve, "ok")) > okBefore, "the reload");
              // Applied as a pair: the new address answers by the new token, the old socket is gone.
              await waitFor(
                async () => {
                  assert.deepEqual(await observe(adminPort), expected(to, TOKEN_AFTER));
                  return true;
                },
                `the admin listener after the reload (${describeState(to)})`,
              );
              const status = await getJson<{ config: { lastReload: { ok: boolean } } }>(
                `http://127.0.0.1:${adminPort}/api/status`,
                to.token ? TOKEN_AFTER : undefined,
              );
              assert.equal(status.body.config.lastReload.ok, true);
            } else {
              // Refused as a whole: the old pair stays, exactly as it was.
              await waitFor(async () => (await reloadsSeen(serve, "failed")) > failedBefore, "the refusal");
              assert.deepEqual(await observe(adminPort), expected(from, TOKEN_BEFORE));
            }
            assert.deepEqual(await openings.stop(), [], "the admin API answered the network without a token");
            for (const token of [TOKEN_BEFORE, TOKEN_AFTER])
              assert.ok(!serve.output().includes(token), "an admin token reached the log");
            assert.equal(await serve.stop(), 0);
          } finally {
            await openings?.stop();
            await serve.stop();
          }
        } finally {
          cleanupAll(ws);
        }
      });
    }

  it("a new address that cannot be bound keeps the old address and its token, says so, and applies once it can", async () => {
    const port = await freePort();
    const adminPort = await freePort();
    // Someone else holds the port the edit asks for.
    const squatter = http.createServer((_req, res) => res.end("squatter"));
    const busyPort = await freePort();
    await new Promise<void>((resolve) => squatter.listen(busyPort, "0.0.0.0", resolve));
    const ws = workspace(
      serveConfig(port, {
        admin: adminSection({ exposure: "loopback", token: true }, adminPort, TOKEN_BEFORE),
      }),
    );
    const serve = await startServe(ws);
    try {
      ws.writeConfig(
        serveConfig(port, { admin: adminSection({ exposure: "all", token: true }, busyPort, TOKEN_AFTER) }),
      );
      const line = await serve.waitForLog(
        (l) => l.msg === "[admin] reload not applied; the admin listener keeps its address and token",
        "the failed move reported",
      );
      assert.equal(line.code, "DOPROXY_LISTEN");
      assert.match(
        String(line.error),
        new RegExp(`cannot listen on 0\\.0\\.0\\.0:${busyPort} \\(EADDRINUSE\\)`),
      );
      // The old pair, whole: the old token on the old address, not the new token.
      assert.equal(await probe("127.0.0.1", adminPort, TOKEN_BEFORE), 200);
      assert.equal(await probe("127.0.0.1", adminPort, TOKEN_AFTER), 401);
      assert.equal(await probe("127.0.0.1", adminPort), 401);
      const status = await getJson<{ config: { lastReload: { ok: boolean; error: string } } }>(
        `http://127.0.0.1:${adminPort}/api/status`,
        TOKEN_BEFORE,
      );
      assert.equal(status.body.config.lastReload.ok, false);
      assert.match(
        status.body.config.lastReload.error,
        /it stays on http:\/\/127\.0\.0\.1:\d+ with its current token/,
      );

      // The port is freed; SIGHUP applies the same file again: now the pair moves.
      await new Promise<void>((resolve) => squatter.close(() => resolve()));
      serve.child.kill("SIGHUP");
      await waitFor(
        async () => (await probe(NETWORK, busyPort, TOKEN_AFTER)) === 200,
        "the move after SIGHUP",
      );
      assert.equal(await probe(NETWORK, busyPort), 401);
      assert.equal(
        await probe("127.0.0.1", adminPort, TOKEN_BEFORE),
        "refused",
        "the old listener is closed",
      );
      assert.equal(await serve.stop(), 0);
    } finally {
      await serve.stop();
      squatter.close();
      cleanupAll(ws);
    }
  });
});
