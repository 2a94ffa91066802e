import http from "node:http";
import type { AddressInfo, Socket } from "node:net";

export interface TestBackend {
  name: string;
  address: string;
  port: number;
  server: http.Server;
  /** Requests served (health checks excluded). */
  hits: number;
  /** Requests received, including ones still in progress. */
  started: number;
  close(): Promise<void>;
  /** Listens again on the same port after close(). */
  reopen(): Promise<void>;
}

export interface BackendOptions {
  name: string;
  /** Delay before answering a proxied request, ms. */
  delayMs?: number | (() => number);
  /** Health path answers with this status. */
  healthStatus?: () => number;
  handler?: (req: http.IncomingMessage, res: http.ServerResponse) => boolean | undefined;
  port?: number;
}

/**
 * A real HTTP server on 127.0.0.1 that answers "<name> <method> <url>" (and echoes headers as
 * JSON under x-echo-headers), with a health endpoint, an optional delay and a custom handler.
 */
export async function startBackend(options: BackendOptions): Promise<TestBackend> {
  const sockets = new Set<Socket>();
  const backend: TestBackend = {
    name: options.name,
    address: "",
    port: options.port ?? 0,
    server: undefined as unknown as http.Server,
    hits: 0,
    started: 0,
    close: async () => {
      await new Promise<void>((resolve) => {
        backend.server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      });
    },
    reopen: async () => {
      await listen();
    },
  };
  const listen = async (): Promise<void> => {
    const server = http.createServer((req, res) => {
      if (req.url === "/health") {
        res.statusCode = options.healthStatus?.() ?? 200;
        res.end("ok");
        return;
      }
      backend.started++;
      if (options.handler?.(req, res)) {
        backend.hits++;
        return;
      }
      const delay = typeof options.delayMs === "function" ? options.delayMs() : (options.delayMs ?? 0);
      const answer = () => {
        backend.hits++;
        res.setHeader("x-backend", options.name);
        res.setHeader("x-echo-headers", JSON.stringify(req.headers));
        res.end(`${options.name} ${req.method} ${req.url}`);
      };
      req.resume();
      req.on("end", () => (delay > 0 ? setTimeout(answer, delay) : answer()));
    });
    server.on("connection", (socket) => {
      sockets.add(socket);
      socket.on("close", () => sockets.delete(socket));
    });
    await new Promise<void>((resolve) => server.listen(backend.port, "127.0.0.1", resolve));
    backend.server = server;
    backend.port = (server.address() as AddressInfo).port;
    backend.address = `127.0.0.1:${backend.port}`;
  };
  await listen();
  return backend;
}

export { freePort } from "../../scripts/free-port.js";
