import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, test } from "node:test";
import { FlushBatch } from "../../../../src/proxy/observe/flush-batch.js";
import { nextSaturated } from "../../../../src/proxy/observe/loop-saturation.js";

// A real server and real client connections: what the batch holds is bytes on real sockets.
let server: http.Server;
let port = 0;
/** The next requests to arrive, handed to the test that waits for them. */
let waiting:
  | { count: number; got: http.ServerResponse[]; resolve: (r: http.ServerResponse[]) => void }
  | undefined;

before(async () => {
  server = http.createServer((_req, res) => {
    if (!waiting) return;
    waiting.got.push(res);
    if (waiting.got.length === waiting.count) waiting.resolve(waiting.got);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  port = (server.address() as AddressInfo).port;
});
after(() => server.close());

/** Sends `count` requests on connections of their own; resolves with the server's responses once all arrived. */
function requests(count: number): { responses: Promise<http.ServerResponse[]>; bodies: Promise<string>[] } {
  const responses = new Promise<http.ServerResponse[]>((resolve) => {
    waiting = { count, got: [], resolve };
  });
  const bodies = Array.from(
    { length: count },
    () =>
      new Promise<string>((resolve, reject) => {
        http
          .get({ host: "127.0.0.1", port, path: "/", agent: false }, (res) => {
            let body = "";
            res.setEncoding("utf8");
            res.on("data", (chunk) => {
              body += chunk;
            });
            res.on("end", () => resolve(body));
          })
          .on("error", reject);
      }),
  );
  return { responses, bodies };
}

const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

test("responses ended in one turn are held until its end, then all reach their clients", async () => {
  const batch = new FlushBatch(() => true);
  const { responses, bodies } = requests(3);
  const held = await responses;
  for (const [i, res] of held.entries()) {
    res.writeHead(200, { "content-length": "2" });
    assert.equal(batch.hold(res), true);
    res.write(`r${i}`);
    batch.end(res);
  }
  // Still this turn: every response's bytes wait on its corked socket, none has ended.
  for (const res of held) {
    assert.equal(res.writableEnded, false);
    assert.ok((res.socket?.writableLength ?? 0) > 0, "the response's bytes are held");
  }
  await nextTurn();
  for (const res of held) assert.equal(res.writableEnded, true);
  assert.deepEqual(await Promise.all(bodies), ["r0", "r1", "r2"]);
});

test("a response still streaming is sent at the end of the turn and streams on unheld", async () => {
  const batch = new FlushBatch(() => true);
  const { responses, bodies } = requests(1);
  const [res] = (await responses) as [http.ServerResponse];
  res.writeHead(200, { "content-type": "text/plain" });
  batch.hold(res);
  res.write("first ");
  await nextTurn();
  // Uncorked by the batch: what was written has gone out, and the response is still open.
  assert.equal(res.socket?.writableLength, 0);
  assert.equal(res.writableEnded, false);
  res.write("second");
  batch.end(res);
  assert.equal(res.writableEnded, true, "a response no longer held ends at once");
  assert.equal(await bodies[0], "first second");
});

test("a response whose client left before the batch flushed is skipped", async () => {
  const batch = new FlushBatch(() => true);
  const { responses, bodies } = requests(2);
  const [gone, stays] = (await responses) as [http.ServerResponse, http.ServerResponse];
  for (const res of [gone, stays]) {
    res.writeHead(200, { "content-length": "2" });
    batch.hold(res);
    res.write("ok");
    batch.end(res);
  }
  gone.destroy();
  const [goneBody, staysBody] = await Promise.allSettled(bodies);
  assert.equal(goneBody?.status, "rejected");
  assert.deepEqual(staysBody, { status: "fulfilled", value: "ok" });
  assert.equal(gone.writableEnded, false);
});

test("below saturation nothing is held: each response is written when it ends", async () => {
  const batch = new FlushBatch(() => false);
  const { responses, bodies } = requests(1);
  const [res] = (await responses) as [http.ServerResponse];
  res.writeHead(200, { "content-length": "2" });
  assert.equal(batch.hold(res), false);
  res.write("ok");
  batch.end(res);
  assert.equal(res.writableEnded, true);
  assert.equal(await bodies[0], "ok");
});

test("the loop counts as saturated from 90 % busy until it falls below 70 %", () => {
  const rows: [saturated: boolean, utilization: number, expected: boolean][] = [
    [false, 0.5, false],
    [false, 0.89, false],
    [false, 0.9, true],
    [false, 1, true],
    [true, 0.95, true],
    [true, 0.8, true],
    [true, 0.7, true],
    [true, 0.69, false],
    [true, 0, false],
  ];
  for (const [saturated, utilization, expected] of rows)
    assert.equal(nextSaturated(saturated, utilization), expected, `${saturated} at ${utilization}`);
});
