import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { describe, it } from "node:test";
import { ROOT } from "../helpers/cli.js";

describe("the logger scrubs registered secrets", () => {
  it("from the message and from string fields beside it (an error's text)", () => {
    // A real process writing to a real stdout, as serve does.
    const script = `
      import { createLogger, flushLog } from "./src/log.ts";
      import { registerSecret } from "./src/util/secrets.ts";
      registerSecret("hunter2-secret");
      const log = createLogger();
      log.error({ error: "auth failed for hunter2-secret", count: 3, nested: { keep: "as is" } }, "failed: hunter2-secret");
      flushLog(log);
    `;
    const result = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
      cwd: ROOT,
      encoding: "utf8",
      timeout: 30_000,
    });
    assert.equal(result.status, 0, result.stderr);
    const line = JSON.parse(result.stdout.trim()) as Record<string, unknown>;
    assert.equal(line.msg, "failed: [redacted]");
    assert.equal(line.error, "auth failed for [redacted]");
    assert.equal(line.count, 3);
    assert.doesNotMatch(result.stdout, /hunter2-secret/);
  });
});
