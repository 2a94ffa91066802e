import http from "node:http";
import net, { type AddressInfo } from "node:net";

/**
 * Sends bytes on a fresh TCP connection, half-closes it, and returns everything that came back
 * until the server closed the connection (or the deadline passed: `timedOut`).
 */
export function rawExchange(
  port: number,
  bytes: string | Buffer,
  timeoutMs = 5000,
  keepOpen = false,
): Promise<{ text: string; timedOut: boolean }> {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    const chunks: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      socket.destroy();
    }, timeoutMs);
    socket.on("connect", () => {
      socket.write(bytes);
      if (!keepOpen) socket.end();
    });
    socket.on("data", (chunk) => chunks.push(chunk));
    socket.on("error", () => {});
    socket.on("close", () => {
      clearTimeout(timer);
      resolve({ text: Buffer.concat(chunks).toString("latin1"), timedOut });
    });
  });
}

/**
 * The status codes of every response in a raw HTTP/1.1 byte stream, in order (a pipelined
 * response starts right after the previous body; the bodies in these tests never hold "HTTP/1.").
 */
export function statuses(text: string): number[] {
  return [...text.matchAll(/HTTP\/1\.[01] (\d{3}) /g)].map((m) => Number(m[1]));
}

/** A request exactly as a backend's HTTP parser understood it. */
export interface ReceivedRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/**
 * A real HTTP server that records every *complete* request it parses (method, target, headers,
 * body), in arrival order, and answers each with "ok <n>". Behind the proxy it shows what the
 * proxy really sent; fed the client's bytes directly it is the reference parse.
 */
export interface RecordingServer {
  port: number;
  address: string;
  received: ReceivedRequest[];
  close(): Promise<void>;
}

export async function startRecordingServer(): Promise<RecordingServer> {
  const received: ReceivedRequest[] = [];
  const server = http.createServer((req, res) => {
    if (req.url === "/health") {
      res.end("ok");
      return;
    }
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      received.push({
        method: req.method ?? "",
        url: req.url ?? "",
        headers: req.headers,
        body: Buffer.concat(chunks).toString("latin1"),
      });
      const body = `ok ${received.length} ${req.method} ${req.url}`;
      res.writeHead(200, { "content-type": "text/plain", "content-length": Buffer.byteLength(body) });
      res.end(body);
    });
    req.on("error", () => {});
  });
  server.on("clientError", (_error, socket) => socket.destroy());
  const sockets = new Set<net.Socket>();
  server.on("connection", (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    address: `127.0.0.1:${port}`,
    received,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
