import assert from "node:assert/strict";
import http from "node:http";
import { describe, it } from "node:test";
import { adminUrl } from "../helpers/admin.js";
import { freePort } from "../helpers/backend.js";
import { cleanupAll, runCliAsync, serveConfig, startServe, workspace } from "../helpers/cli.js";

/** A GET with full control over the Host and Authorization headers (fetch sets Host itself). */
function adminGet(
  url: string,
  path: string,
  headers: Record<string, string>,
): Promise<{ status: number; headers: http.IncomingHttpHeaders }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.get({ host: hostname, port, path, headers, agent: false }, (res) => {
      res.resume();
      resolve({ status: res.statusCode ?? 0, headers: res.headers });
    });
    req.on("error", reject);
  });
}

describe("admin exposure guards", () => {
  it("refuses a reload that would open a network-facing admin listener without a token", async () => {
    const port = await freePort();
    const adminPort = await freePort();
    const withToken = serveConfig(port, {
      admin: `listen = "0.0.0.0:${adminPort}"\ntoken = "\${ADMIN_TOKEN}"`,
    });
    const ws = workspace(withToken);
    const env = { ADMIN_TOKEN: "s3cret-admin" };
    const serve = await startServe(ws, env);
    try {
      const admin = `http://127.0.0.1:${adminPort}`;
      assert.equal((await adminGet(admin, "/api/status", {})).status, 401);
      assert.equal(
        (await adminGet(admin, "/api/status", { authorization: "bearer s3cret-admin" })).status,
        200,
      );

      // The edit deletes the token: config check refuses it, and so does the running serve.
      const withoutToken = serveConfig(port, { admin: `listen = "0.0.0.0:${adminPort}"` });
      ws.writeConfig(withoutToken);
      const check = await runCliAsync(ws, ["config", "check"], env);
      assert.equal(check.status, 2, check.stdout + check.stderr);
      assert.match(check.stderr, /non-loopback admin listener needs \[admin\] token/);
      await serve.waitForLog(
        (l) => l.msg === "configuration reload failed; keeping the last good configuration",
        "the reload to be refused",
      );
      assert.equal((await adminGet(admin, "/metrics", {})).status, 401, "/metrics opened by a reload");
      assert.equal((await adminGet(admin, "/api/backends", {})).status, 401, "/api opened by a reload");
      assert.ok(!serve.output().includes("s3cret-admin"), "the admin token reached the log");
    } finally {
      await serve.stop();
      cleanupAll(ws);
    }
  });

  it("answers only to known Host names and sends CSP and frame protection", async () => {
    const port = await freePort();
    const ws = workspace(
      serveConfig(port, { admin: 'listen = "127.0.0.1:0"\nallowed-hosts = ["admin.internal"]' }),
    );
    const serve = await startServe(ws);
    try {
      const admin = await adminUrl(serve);
      const page = await adminGet(admin, "/", { host: "127.0.0.1" });
      assert.equal(page.status, 200);
      assert.match(
        String(page.headers["content-security-policy"]),
        /default-src 'none'.*frame-ancestors 'none'/,
      );
      assert.equal(page.headers["x-frame-options"], "DENY");
      // DNS rebinding: a page on attacker.example resolved to 127.0.0.1 sends its own name as Host.
      assert.equal((await adminGet(admin, "/api/status", { host: "attacker.example" })).status, 421);
      assert.equal((await adminGet(admin, "/", { host: "attacker.example:80" })).status, 421);
      assert.equal((await adminGet(admin, "/api/status", { host: "admin.internal:9090" })).status, 200);
      assert.equal((await adminGet(admin, "/api/status", { host: "localhost" })).status, 200);
      // A target that crashed the admin before is a 400 now, and the listener keeps answering.
      assert.equal((await adminGet(admin, "http://a:99999/", { host: "localhost" })).status, 400);
      assert.equal((await adminGet(admin, "/api/status", { host: "localhost" })).status, 200);
    } finally {
      await serve.stop();
      cleanupAll(ws);
    }
  });
});
