import assert from "node:assert/strict";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { adminUrl } from "../helpers/admin.js";
import { freePort } from "../helpers/backend.js";
import { cleanupAll, runCliAsync, serveConfig, startDaemon, startServe, workspace } from "../helpers/cli.js";
import { startPostgres, type TestPostgres } from "../helpers/postgres.js";
import { simSection, startSim } from "../helpers/sim.js";

/** Every secret is a distinct string no output may contain, whole or percent-decoded. */
function assertNoSecret(outputs: Record<string, string>, secrets: Record<string, string>): void {
  for (const [where, text] of Object.entries(outputs))
    for (const [name, secret] of Object.entries(secrets))
      assert.ok(!text.includes(secret), `${name} (${secret}) appears in ${where}:\n${text.slice(0, 3000)}`);
}

/**
 * The API token, the admin token and every secret an inventory URL can carry (the user-info
 * password, and `password`, `sslpassword`, `sslkey` in its query, which node-postgres reads) never
 * reach an output: `config check`, `serve`'s log, its admin API, other commands and errors, whether
 * the URL is written in the file or comes from `${ENV}`.
 */
describe("secrets in outputs", () => {
  let pg: TestPostgres;
  before(async () => {
    pg = await startPostgres();
  });
  after(() => pg?.stop());

  it("are redacted everywhere by the one URL function, from the file and from ${ENV}", async () => {
    const ws = workspace("");
    const sim = await startSim(ws);
    const secrets = {
      "the DigitalOcean token": sim.token,
      "the admin token": "admin-tok-7c1e9f",
      "the user-info password": "userinfo-pw-5b2d",
      "the query password": "query-pw-91af",
      "the query sslpassword": "ssl-pw-3e7c",
      "the query sslkey": path.join(ws.dir, "client-key-0d4a.pem"),
    };
    const outputs: Record<string, string> = {};
    try {
      // 1. The whole URL from the environment, a running serve (trust authentication: PostgreSQL
      // ignores the passwords, so serve starts).
      const database = new URL(await pg.createDatabase());
      const envUrl = `postgres://postgres:${secrets["the user-info password"]}@127.0.0.1:${pg.port}${database.pathname}?application_name=t&password=${secrets["the query password"]}`;
      const env = {
        DIGITALOCEAN_TOKEN: sim.token,
        ADMIN_TOKEN: secrets["the admin token"],
        DB_URL: envUrl,
      };
      ws.writeConfig(
        serveConfig(await freePort(), {
          inventory: 'flush-interval = "200ms"\nurl = "${DB_URL}"',
          admin: 'listen = "127.0.0.1:0"\ntoken = "${ADMIN_TOKEN}"',
          rest: simSection(sim),
        }),
      );
      const check = await runCliAsync(ws, ["config", "check"], env);
      assert.equal(check.status, 0, check.stderr);
      assert.match(
        check.stdout,
        new RegExp(
          `inventory {2}postgres://postgres:\\*\\*\\*@127\\.0\\.0\\.1:${pg.port}${database.pathname}\\?application_name=t&password=\\*\\*\\* \\(PostgreSQL\\)`,
        ),
      );
      outputs["config check (URL from ${ENV})"] = check.stdout + check.stderr;
      const serve = await startServe(ws, env);
      try {
        const starting = await serve.waitForLog(
          (l) => l.msg === "starting doproxy serve",
          "the start-up line",
        );
        assert.match(String(starting.inventory), /password=\*\*\*$/);
        const admin = await adminUrl(serve);
        for (const route of ["/api/status", "/api/backends", "/api/events?since=1h", "/metrics"]) {
          const response = await fetch(`${admin}${route}`, {
            headers: { authorization: `Bearer ${secrets["the admin token"]}` },
          });
          assert.equal(response.status, 200, route);
          outputs[`GET ${route}`] = await response.text();
        }
        for (const args of [
          ["droplets", "list"],
          ["droplets", "sync"],
          ["events", "--since", "1h"],
        ]) {
          const result = await runCliAsync(ws, args, env);
          assert.equal(result.status, 0, `${args.join(" ")}: ${result.stderr}`);
          outputs[args.join(" ")] = result.stdout + result.stderr;
        }
      } finally {
        assert.equal(await serve.stop(), 0);
        outputs["serve's log"] = serve.output();
      }

      // 2. The URL written in the file, with sslpassword and sslkey, and a database out of reach:
      // the errors of `config check --online` and of `serve` name the URL, redacted.
      const closed = await freePort();
      ws.writeConfig(
        serveConfig(await freePort(), {
          inventory: `url = "postgres://doproxy:${secrets["the user-info password"]}@127.0.0.1:${closed}/doproxy?sslmode=require&sslpassword=${secrets["the query sslpassword"]}&sslkey=${secrets["the query sslkey"]}"`,
        }),
      );
      const fileCheck = await runCliAsync(ws, ["config", "check"]);
      assert.equal(fileCheck.status, 0, fileCheck.stderr);
      assert.match(
        fileCheck.stdout,
        new RegExp(
          `postgres://doproxy:\\*\\*\\*@127\\.0\\.0\\.1:${closed}/doproxy\\?sslmode=require&sslpassword=\\*\\*\\*&sslkey=\\*\\*\\* \\(PostgreSQL\\)`,
        ),
      );
      outputs["config check (URL in the file)"] = fileCheck.stdout + fileCheck.stderr;
      const online = await runCliAsync(ws, ["config", "check", "--online"]);
      assert.equal(online.status, 1, online.stdout + online.stderr);
      assert.match(online.stderr, /cannot reach the PostgreSQL inventory/);
      outputs["config check --online (database out of reach)"] = online.stdout + online.stderr;
      const failing = startDaemon(ws, ["serve"], { DOPROXY_DEBUG: "1" });
      assert.equal(await failing.exited, 1, failing.output());
      assert.match(failing.output(), /cannot reach the PostgreSQL inventory/);
      outputs["serve (database out of reach, DOPROXY_DEBUG=1)"] = failing.output();

      assertNoSecret(outputs, secrets);
    } finally {
      await sim.daemon.stop();
      cleanupAll(ws);
    }
  });
});
