import assert from "node:assert/strict";
import net from "node:net";
import { describe, it } from "node:test";
import { ERROR_CODES } from "../../src/errors.js";
import { freePort } from "../helpers/backend.js";
import { cleanupAll, runCliAsync, serveConfig, startDaemon, workspace } from "../helpers/cli.js";

/** The first line's code, which must be in the catalogue, and the exit status must be the code's. */
function codeOf(stderr: string, status: number | null): string {
  const code = /^doproxy: \[(DOPROXY_[A-Z_]+)\] /.exec(stderr)?.[1];
  assert.ok(code && code in ERROR_CODES, stderr);
  assert.equal(status, ERROR_CODES[code as keyof typeof ERROR_CODES].exit, stderr);
  return code as string;
}

describe("error codes on the command line", () => {
  it("prints the code first, the hint second, and exits with the code's status", async () => {
    const ws = workspace("[autoscale]\nmin = 3\nmax = 2\n");
    const busy = net.createServer();
    try {
      const config = await runCliAsync(ws, ["config", "check"]);
      assert.equal(codeOf(config.stderr, config.status), "DOPROXY_CONFIG");

      ws.writeConfig(serveConfig(await freePort()));
      const usage = await runCliAsync(ws, ["events", "--since", "soon"]);
      assert.equal(codeOf(usage.stderr, usage.status), "DOPROXY_USAGE");
      const parse = await runCliAsync(ws, ["droplets", "add", "--no-such-flag"]);
      assert.equal(codeOf(parse.stderr, parse.status), "DOPROXY_USAGE");
      assert.match(parse.stderr, /unknown option '--no-such-flag'/);

      const port = await freePort();
      await new Promise<void>((resolve) => busy.listen(port, "127.0.0.1", resolve));
      ws.writeConfig(serveConfig(port));
      const serve = startDaemon(ws, ["serve"]);
      const status = await serve.exited;
      const lines = serve
        .output()
        .split("\n")
        .filter((l) => /^(doproxy:| {2}hint:)/.test(l));
      assert.equal(codeOf(lines.join("\n"), status), "DOPROXY_LISTEN");
      assert.match(lines[0] as string, /cannot listen on 127\.0\.0\.1:\d+: EADDRINUSE/);
      assert.match(lines[1] as string, /^ {2}hint: change \[proxy\] listen/);
    } finally {
      busy.close();
      cleanupAll(ws);
    }
  });
});
