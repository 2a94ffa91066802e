import http from "node:http";
import { createProxyServer } from "http-proxy-3";
import { Pool } from "undici";

const [port, target, mode] = process.argv.slice(2);
function httpProxy3() {
  const agent =
    mode === "keepalive" ? new http.Agent({ keepAlive: true, maxSockets: Number.POSITIVE_INFINITY }) : void 0;
  const proxy = createProxyServer({ target, agent });
  proxy.on("error", (_error, _req, res) => {
    if ("writeHead" in res && !res.headersSent) res.writeHead(502).end();
  });
  return (req, res) => proxy.web(req, res);
}
function undiciPool() {
  const pool = new Pool(target, { pipelining: 1, headersTimeout: 0, bodyTimeout: 0 });
  return (req, res) => {
    pool.dispatch(
      { method: req.method ?? "GET", path: req.url ?? "/", headers: req.headers, body: null },
      {
        onConnect() {},
        onError() {
          if (!res.headersSent) res.writeHead(502);
          res.end();
        },
        onHeaders(status, raw) {
          const headers = [];
          for (const field of raw) headers.push(field.toString("latin1"));
          res.writeHead(status, headers);
          return true;
        },
        onData(chunk) {
          res.write(chunk);
          return true;
        },
        onComplete() {
          res.end();
        },
      },
    );
  };
}
http
  .createServer(mode === "undici" ? undiciPool() : httpProxy3())
  .listen(Number(port), "127.0.0.1", () => process.stdout.write("{}\n"));
