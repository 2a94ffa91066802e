import assert from "node:assert/strict";
import type http from "node:http";
import { after, before, describe, it } from "node:test";
import { adminUrl } from "../helpers/admin.js";
import { freePort, startBackend, type TestBackend } from "../helpers/backend.js";
import { type Daemon, serveConfig, startServe, type Workspace, workspace } from "../helpers/cli.js";
import { type Reply, request } from "../helpers/http.js";
import { addBackend } from "../helpers/pool.js";
import { waitFor } from "../helpers/wait.js";

/** One request from a chosen loopback source address (each is a different client to the proxy). */
function from(
  source: string,
  port: number,
  options: { method?: string; path?: string; headers?: http.OutgoingHttpHeaders } = {},
): Promise<Reply> {
  return request(port, options.path ?? "/", { ...options, localAddress: source });
}

describe("per-client rate limits", () => {
  let ws: Workspace;
  let serve: Daemon;
  let port: number;
  let backend: TestBackend;

  before(async () => {
    port = await freePort();
    ws = workspace(
      serveConfig(port, {
        rest: '[rate-limit]\nrequests = 5\nper = "1m"\n',
      }),
    );
    backend = await startBackend({ name: "app" });
    serve = await startServe(ws);
    await addBackend(ws, backend);
  });

  after(async () => {
    await serve?.stop();
    await backend?.close();
    ws?.cleanup();
  });

  it("answers 429 with Retry-After and the RateLimit fields once a client is over its limit; others are unaffected", async () => {
    const hitsBefore = backend.hits;
    const allowed: Reply[] = [];
    for (let i = 0; i < 5; i++) allowed.push(await from("127.0.0.2", port));
    assert.deepEqual(
      allowed.map((r) => r.status),
      [200, 200, 200, 200, 200],
    );
    assert.equal(allowed[4]?.headers["ratelimit-policy"], '"default";q=5;w=60');
    assert.match(String(allowed[4]?.headers.ratelimit), /^"default";r=0;t=\d+$/);

    const refused = await from("127.0.0.2", port);
    assert.equal(refused.status, 429);
    assert.ok(Number(refused.headers["retry-after"]) >= 1, `Retry-After ${refused.headers["retry-after"]}`);
    assert.equal(refused.headers["ratelimit-policy"], '"default";q=5;w=60');
    assert.match(String(refused.headers.ratelimit), /r=0/);
    assert.equal(backend.hits - hitsBefore, 5, "the refused request never reached the backend");

    // X-Forwarded-For from a peer that is not a trusted proxy changes nothing.
    const spoofed = await from("127.0.0.2", port, { headers: { "x-forwarded-for": "198.51.100.7" } });
    assert.equal(spoofed.status, 429);

    const other = await from("127.0.0.3", port);
    assert.equal(other.status, 200, "another client has its own bucket");

    const admin = await adminUrl(serve);
    const metrics = await (await fetch(`${admin}/metrics`)).text();
    assert.match(metrics, /doproxy_rejected_requests_total\{reason="rate-limit"\} 2/);
  });

  it("logs a flood of refusals a few lines a second, not one per request", async () => {
    const before = serve.logs().filter((l) => l.status === 429).length;
    await Promise.all(Array.from({ length: 200 }, () => from("127.0.0.4", port)));
    const flood = await waitFor(() => {
      const lines = serve.logs().filter((l) => l.status === 429);
      return lines.length > before ? lines.slice(before) : undefined;
    }, "access log lines of the refusals");
    assert.ok(flood.length <= 30, `${flood.length} lines for 195 refusals`);
  });

  it("keys on X-Forwarded-For only when the peer is a trusted proxy", async () => {
    ws.writeConfig(
      serveConfig(port, {
        proxy: 'trusted-proxies = ["127.0.0.5/32"]',
        rest: '[rate-limit]\nrequests = 2\nper = "1m"\n',
      }),
    );
    await serve.waitForLog((l) => l.msg === "configuration reloaded", "the reload");
    const viaProxy = async (client: string) =>
      (await from("127.0.0.5", port, { headers: { "x-forwarded-for": client } })).status;
    assert.deepEqual(
      [await viaProxy("203.0.113.1"), await viaProxy("203.0.113.1"), await viaProxy("203.0.113.1")],
      [200, 200, 429],
    );
    assert.equal(await viaProxy("203.0.113.2"), 200, "a different client behind the same load balancer");
  });
});

describe("CORS", () => {
  let ws: Workspace;
  let serve: Daemon;
  let port: number;
  let backend: TestBackend;

  before(async () => {
    port = await freePort();
    ws = workspace(
      serveConfig(port, {
        rest: `[cors]
allow-origins = ["https://app.example.com"]
allow-headers = ["content-type", "x-api-key"]
expose-headers = ["x-backend"]
allow-credentials = true
max-age = "5m"
`,
      }),
    );
    backend = await startBackend({
      name: "app",
      handler: (req, res) => {
        if (req.method !== "OPTIONS") return false;
        // The backend's own answer to OPTIONS, which doproxy must pass through for other origins.
        res.setHeader("x-backend", "app");
        res.setHeader("allow", "GET, OPTIONS");
        res.statusCode = 200;
        res.end("backend options");
        return true;
      },
    });
    serve = await startServe(ws);
    await addBackend(ws, backend);
  });

  after(async () => {
    await serve?.stop();
    await backend?.close();
    ws?.cleanup();
  });

  it("answers a preflight from an allowed origin itself, without a backend request", async () => {
    const started = backend.started;
    const reply = await from("127.0.0.1", port, {
      method: "OPTIONS",
      path: "/api/items",
      headers: {
        origin: "https://app.example.com",
        "access-control-request-method": "PUT",
        "access-control-request-headers": "content-type",
      },
    });
    assert.equal(reply.status, 204);
    assert.equal(reply.headers["access-control-allow-origin"], "https://app.example.com");
    assert.equal(reply.headers["access-control-allow-credentials"], "true");
    assert.match(String(reply.headers["access-control-allow-methods"]), /PUT/);
    assert.equal(reply.headers["access-control-allow-headers"], "content-type, x-api-key");
    assert.equal(reply.headers["access-control-max-age"], "300");
    assert.equal(backend.started, started, "no backend saw the preflight");
  });

  it("gives an actual request from an allowed origin the CORS headers", async () => {
    const reply = await from("127.0.0.1", port, { headers: { origin: "https://app.example.com" } });
    assert.equal(reply.status, 200);
    assert.equal(reply.headers["access-control-allow-origin"], "https://app.example.com");
    assert.equal(reply.headers["access-control-allow-credentials"], "true");
    assert.equal(reply.headers["access-control-expose-headers"], "x-backend");
    assert.match(String(reply.headers.vary), /Origin/);
  });

  it("adds nothing for an origin it does not allow: the backend's answer passes through unchanged", async () => {
    const started = backend.started;
    const preflight = await from("127.0.0.1", port, {
      method: "OPTIONS",
      headers: { origin: "https://evil.example", "access-control-request-method": "PUT" },
    });
    assert.equal(preflight.status, 200);
    assert.equal(preflight.body, "backend options");
    assert.equal(backend.started, started + 1, "the backend answered it");
    assert.equal(preflight.headers["access-control-allow-origin"], undefined);
    const actual = await from("127.0.0.1", port, { headers: { origin: "https://evil.example" } });
    assert.equal(actual.status, 200);
    for (const name of Object.keys(actual.headers)) assert.ok(!name.startsWith("access-control-"), name);
  });
});
