import assert from "node:assert/strict";
import type http from "node:http";
import { after, describe, it } from "node:test";
import { freePort, startBackend, type TestBackend } from "../helpers/backend.js";
import { runCliAsync, serveConfig, startServe, workspace } from "../helpers/cli.js";
import { request } from "../helpers/http.js";
import { addBackend } from "../helpers/pool.js";
import { waitFor } from "../helpers/wait.js";

/** Backends that hold /slow until released, so a drain can be kept open on purpose. */
async function holdingBackend(name: string, held: http.ServerResponse[]): Promise<TestBackend> {
  return startBackend({
    name,
    handler: (req, res) => {
      if (req.url !== "/slow") return false;
      res.setHeader("x-backend", name);
      held.push(res);
      return true;
    },
  });
}

const cookieOf = (reply: { headers: http.IncomingHttpHeaders }): string | undefined =>
  reply.headers["set-cookie"]?.find((c) => c.startsWith("doproxy_backend="));

describe("sticky sessions", () => {
  const cleanup: Array<() => Promise<unknown> | unknown> = [];
  after(async () => {
    for (const step of cleanup.reverse()) await step();
  });

  it("cookie: a client stays on one backend, stays during its drain, and moves with no error when it is removed", async () => {
    const port = await freePort();
    const ws = workspace(serveConfig(port, { proxy: 'sticky = "cookie"\ndrain-timeout = "30s"' }));
    const held: http.ServerResponse[] = [];
    const backends = [
      await holdingBackend("a", held),
      await holdingBackend("b", held),
      await holdingBackend("c", held),
    ];
    const serve = await startServe(ws);
    cleanup.push(
      () => ws.cleanup(),
      () => serve.stop(),
    );
    for (const backend of backends) cleanup.push(() => backend.close());
    const ids = new Map<string, number>();
    for (const backend of backends) ids.set(backend.name, await addBackend(ws, backend));

    const first = await request(port, "/");
    const setCookie = cookieOf(first);
    assert.ok(setCookie, "the first answer pins the client");
    assert.match(setCookie, /; HttpOnly/);
    assert.match(setCookie, /; SameSite=Lax/);
    assert.match(setCookie, /; Path=\//);
    assert.doesNotMatch(setCookie, /Secure/, "plain HTTP: no Secure attribute");
    const pinned = first.headers["x-backend"] as string;
    const pinnedBackend = backends.find((b) => b.name === pinned) as TestBackend;
    const token = (setCookie.split(";")[0] as string).split("=")[1] as string;
    assert.ok(
      !token.includes(String(pinnedBackend.port)) && !token.includes("127.0.0.1"),
      "the cookie is opaque",
    );
    const cookie = `theme=dark; doproxy_backend=${token}`;

    const seen = new Set<string>();
    for (let i = 0; i < 100; i++) {
      const reply = await request(port, "/", { headers: { cookie } });
      assert.equal(reply.status, 200);
      seen.add(reply.headers["x-backend"] as string);
      assert.equal(cookieOf(reply), undefined, "no new cookie while the pin holds");
      if (i === 0) {
        const forwarded = JSON.parse(reply.headers["x-echo-headers"] as string) as Record<string, string>;
        assert.equal(forwarded.cookie, "theme=dark", "doproxy's own cookie is not passed to the backend");
      }
    }
    assert.deepEqual([...seen], [pinned]);

    // A request held open on the pinned backend keeps its drain going.
    const slow = request(port, "/slow", { headers: { cookie } });
    await waitFor(() => held.length === 1, "the slow request held by the pinned backend");
    const removal = runCliAsync(ws, ["droplets", "remove", String(ids.get(pinned))]);
    await waitFor(async () => {
      const listed = JSON.parse((await runCliAsync(ws, ["droplets", "list", "--json"])).stdout) as Array<{
        address: string;
        state: string;
      }>;
      return listed.find((row) => row.address === pinnedBackend.address)?.state === "draining";
    }, "the pinned backend draining");
    for (let i = 0; i < 20; i++) {
      const reply = await request(port, "/", { headers: { cookie } });
      assert.equal(reply.status, 200);
      assert.equal(reply.headers["x-backend"], pinned, "a sticky client keeps its backend while it drains");
    }
    const fresh = await request(port, "/");
    assert.notEqual(fresh.headers["x-backend"], pinned, "new clients never go to a draining backend");

    held[0]?.end("slow done");
    assert.equal((await slow).status, 200);
    const removed = await removal;
    assert.equal(removed.status, 0, removed.stderr);

    const moved = await request(port, "/", { headers: { cookie } });
    assert.equal(moved.status, 200);
    assert.notEqual(moved.headers["x-backend"], pinned);
    const newCookie = cookieOf(moved);
    assert.ok(newCookie, "the client is pinned to its new backend");
    const newToken = (newCookie.split(";")[0] as string).split("=")[1] as string;
    for (let i = 0; i < 20; i++) {
      const reply = await request(port, "/", { headers: { cookie: `doproxy_backend=${newToken}` } });
      assert.equal(reply.status, 200);
      assert.equal(reply.headers["x-backend"], moved.headers["x-backend"]);
    }
  });

  it("hash: a client key always lands on the same backend, and a new backend takes only about 1/N of the keys", async () => {
    const port = await freePort();
    const ws = workspace(serveConfig(port, { proxy: 'sticky = "hash"\nsticky-hash-key = "header:X-User"' }));
    const backends = [
      await startBackend({ name: "a" }),
      await startBackend({ name: "b" }),
      await startBackend({ name: "c" }),
    ];
    const joiner = await startBackend({ name: "d" });
    const serve = await startServe(ws);
    cleanup.push(
      () => ws.cleanup(),
      () => serve.stop(),
      () => joiner.close(),
    );
    for (const backend of backends) cleanup.push(() => backend.close());
    for (const backend of backends) await addBackend(ws, backend);

    const users = Array.from({ length: 300 }, (_, i) => `user-${i}`);
    const place = async () => {
      const placed = new Map<string, string>();
      for (const user of users) {
        const reply = await request(port, "/", { headers: { "x-user": user } });
        assert.equal(reply.status, 200);
        placed.set(user, reply.headers["x-backend"] as string);
      }
      return placed;
    };
    const before = await place();
    assert.deepEqual(await place(), before, "the same key, the same backend");
    assert.equal(new Set(before.values()).size, 3);

    await addBackend(ws, joiner);
    await waitFor(async () => [...(await place()).values()].includes("d"), "d in rotation");
    const after = await place();
    const moved = users.filter((u) => before.get(u) !== after.get(u));
    assert.ok(
      moved.every((u) => after.get(u) === "d"),
      "keys only move to the new backend",
    );
    const share = moved.length / users.length;
    assert.ok(share > 0.12 && share < 0.4, `moved ${moved.length} of ${users.length}`);
  });
});
