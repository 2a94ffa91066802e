import assert from "node:assert/strict";
import type { IncomingMessage, ServerResponse } from "node:http";
import { describe, it } from "node:test";
import { ATOMIC_WRITE_BYTES, createLogger } from "../../../../src/log.js";
import { AccessLog } from "../../../../src/proxy/observe/access-log.js";

/** An access log whose batches are kept, and a way to record a request for `path`. */
function capture() {
  const batches: string[][] = [];
  const log = new AccessLog(createLogger({ level: "info" }), (pieces) => batches.push(pieces));
  const record = (path: string) =>
    log.record(
      { method: "GET", url: path } as IncomingMessage,
      { headersSent: true, statusCode: 200 } as ServerResponse,
      { startedAt: 0, attempts: 1, rttMs: 1, servedBy: "127.0.0.1:8080", error: undefined },
      2,
    );
  return { log, batches, record };
}

describe("access log batches", () => {
  it("hands a batch over in pieces of whole lines, each at most one atomic write, in order", () => {
    const { log, batches, record } = capture();
    // Multi-byte characters: the limit is in bytes, not characters.
    const paths = Array.from({ length: 40 }, (_, i) => `/${i}/${"é".repeat(150)}`);
    for (const path of paths) record(path);
    log.flush();
    assert.equal(batches.length, 1);
    const pieces = batches[0] as string[];
    assert.ok(pieces.length > 1, "a batch larger than one write is split");
    for (const piece of pieces) {
      assert.ok(Buffer.byteLength(piece) <= ATOMIC_WRITE_BYTES, `piece of ${Buffer.byteLength(piece)} bytes`);
      assert.ok(piece.endsWith("}\n"), "a piece ends at a line's end");
    }
    const lines = pieces.join("").split("\n").filter(Boolean);
    assert.deepEqual(
      lines.map((line) => (JSON.parse(line) as { path: string }).path),
      paths,
    );
  });

  it("writes a line longer than one write alone, between the pieces before and after it", () => {
    const { log, batches, record } = capture();
    const long = `/${"x".repeat(ATOMIC_WRITE_BYTES * 2)}`;
    record("/before");
    record(long);
    record("/after");
    log.flush();
    const pieces = batches[0] as string[];
    assert.equal(pieces.length, 3);
    assert.deepEqual(
      pieces.map((piece) => (JSON.parse(piece) as { path: string }).path),
      ["/before", long, "/after"],
    );
  });

  it("a flush with nothing gathered hands nothing over", () => {
    const { log, batches } = capture();
    log.flush();
    assert.deepEqual(batches, []);
  });
});
