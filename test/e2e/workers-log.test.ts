import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import type { Writable } from "node:stream";
import { after, before, describe, it } from "node:test";
import { freePort, startBackend, type TestBackend } from "../helpers/backend.js";
import { CLI, serveConfig, type Workspace, workspace } from "../helpers/cli.js";
import { request } from "../helpers/http.js";
import { addBackend } from "../helpers/pool.js";
import { waitFor } from "../helpers/wait.js";

const REQUESTS = 4_000;
/** Long targets make long access lines, so a few requests fill the pipe. */
const TARGET = `/${"x".repeat(1_000)}`;
const CONCURRENCY = 32;

/**
 * Reads stdin 4 KiB at a time, 2 ms apart (2 MB/s at most, slower than the load below logs),
 * appending what it reads to the file argv[1] names.
 */
const SLOW_READER = `
const fs = require("node:fs");
const out = fs.openSync(process.argv[1], "a");
const buffer = Buffer.alloc(4096);
const pause = new Int32Array(new SharedArrayBuffer(4));
for (;;) {
  let n = 0;
  try { n = fs.readSync(0, buffer, 0, buffer.length, null); } catch (error) {
    if (error.code === "EAGAIN") { Atomics.wait(pause, 0, 0, 1); continue; }
    throw error;
  }
  if (n === 0) break;
  fs.writeSync(out, buffer, 0, n);
  Atomics.wait(pause, 0, 0, 2);
}
`;

const stdoutFile = (ws: Workspace) => path.join(ws.dir, "stdout.log");
const readStdout = (ws: Workspace) =>
  existsSync(stdoutFile(ws)) ? readFileSync(stdoutFile(ws), "utf8") : "";

/**
 * With `[proxy] workers`, several processes share serve's stdout. A log shipper that falls behind
 * fills the pipe, and a write larger than the pipe's atomic size is then split around another
 * process's write: before this was fixed, a run like this one left hundreds of lines spliced
 * into each other, unreadable as JSON.
 */
describe("[proxy] workers = 2: one stdout, every line whole", () => {
  let ws: Workspace;
  let serve: ChildProcess;
  let reader: ChildProcess;
  let port: number;
  let backend: TestBackend;

  before(async () => {
    port = await freePort();
    ws = workspace(serveConfig(port, { proxy: "workers = 2" }));
    backend = await startBackend({ name: "a" });
    // The slow reader: a process of its own that reads serve's stdout 4 KiB at a time with a
    // pause after each read, as a busy shipper does, so the pipe stays nearly full and writes
    // land in part. It appends what it reads to a file.
    reader = spawn(process.execPath, ["-e", SLOW_READER, stdoutFile(ws)], {
      stdio: ["pipe", "ignore", "inherit"],
    });
    serve = spawn(process.execPath, [CLI, "serve"], {
      cwd: ws.dir,
      env: { ...process.env, DOPROXY_CONFIG: "" },
      stdio: ["ignore", reader.stdin as Writable, "inherit"],
    });
    await waitFor(() => readStdout(ws).includes('"msg":"proxy listening"'), "serve to listen", 30_000);
    await addBackend(ws, backend);
  });

  after(async () => {
    if (serve && serve.exitCode === null) {
      const exited = new Promise((resolve) => serve.once("exit", resolve));
      serve.kill("SIGTERM");
      await exited;
    }
    reader?.kill();
    await backend?.close();
    ws?.cleanup();
  });

  it("a slow reader of stdout gets every access line, each one whole, from both workers", async () => {
    let ok = 0;
    {
      let next = 0;
      await Promise.all(
        Array.from({ length: CONCURRENCY }, async () => {
          while (next < REQUESTS) {
            next++;
            if ((await request(port, TARGET)).status === 200) ok++;
          }
        }),
      );
    }
    assert.equal(ok, REQUESTS);

    const lines = () =>
      readStdout(ws)
        .split("\n")
        .filter((line) => line !== "");
    const accessLines = () => lines().filter((line) => line.includes(`"path":"${TARGET}"`));
    await waitFor(
      () => accessLines().length >= REQUESTS,
      () => `${REQUESTS} access lines on stdout (have ${accessLines().length})`,
      60_000,
    );
    const broken = lines().filter((line) => {
      try {
        JSON.parse(line);
        return false;
      } catch {
        return true;
      }
    });
    assert.deepEqual(
      broken.map((line) => line.slice(0, 120)),
      [],
      "every stdout line is one JSON object",
    );
    const parsed = accessLines().map((line) => JSON.parse(line) as { path: string; worker?: number });
    assert.equal(parsed.length, REQUESTS, "one access line per request, none lost or doubled");
    assert.deepEqual(
      [...new Set(parsed.map((line) => line.worker))].sort(),
      [1, 2],
      "lines from both workers",
    );
  });
});
