// A small backend for the benchmark: answers every request with a 64-byte body, /health with "ok".
import http from "node:http";

const body = Buffer.alloc(64, "x");
const server = http.createServer((req, res) => {
  if (req.url === "/health") return res.end("ok");
  res.writeHead(200, { "content-type": "text/plain", "content-length": body.length });
  res.end(body);
});
server.keepAliveTimeout = 65_000;
server.listen(Number(process.argv[2] ?? 0), "127.0.0.1", () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as { port: number }).port })}\n`);
});
