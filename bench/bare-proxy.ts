// The baseline: a bare http-proxy-3 reverse proxy in a few lines, as people write for themselves.
// argv: listen port, target URL, "keepalive" to give it a keep-alive agent.
import http from "node:http";
import { createProxyServer } from "http-proxy-3";

const [port, target, mode] = process.argv.slice(2);
const agent =
  mode === "keepalive"
    ? new http.Agent({ keepAlive: true, maxSockets: Number.POSITIVE_INFINITY })
    : undefined;
const proxy = createProxyServer({ target, agent });
proxy.on("error", (_error, _req, res) => {
  if ("writeHead" in res && !res.headersSent) res.writeHead(502).end();
});
http
  .createServer((req, res) => proxy.web(req, res))
  .listen(Number(port), "127.0.0.1", () => process.stdout.write("{}\n"));
