import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { describe, it } from "node:test";
import { ROOT } from "../helpers/cli.js";

describe("npm run demo", () => {
  it("shows the pool grow under load and shrink after, fails no request, and cleans up after itself", async () => {
    const child = spawn(process.execPath, ["--import", "tsx", "scripts/demo.ts"], {
      cwd: ROOT,
      env: { ...process.env, DEMO_TIME_SCALE: "0.3", CI: "true" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (chunk) => {
      out += chunk;
    });
    child.stderr.on("data", (chunk) => {
      out += chunk;
    });
    const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
    assert.equal(code, 0, out.slice(-3000));
    assert.match(out, /scale\.up /);
    assert.match(out, /scale\.down /);
    assert.match(
      out,
      /demo done: pool grew to [2-4] droplets under load and went back to min; \d+ scaling decisions; 0 of \d+ requests failed/,
    );
    const folder = /working folder (\S+)\)/.exec(out)?.[1] as string;
    assert.ok(folder && !existsSync(folder), "the demo removed its working folder");
  });
});
