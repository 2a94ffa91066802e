import http from "node:http";
import type { Socket } from "node:net";

export interface CapacitySettings {
  /** Requests served at the same time; the rest wait in a queue, as on a small server. */
  capacity: number;
  /** Time one request takes once it is being served, ms. */
  serviceTimeMs: number;
}

/**
 * The HTTP server inside a simulated droplet: listens on the droplet's own loopback addresses at
 * the backend port, serves `capacity` requests at a time for `serviceTimeMs` each and queues the
 * rest, so its latency rises under load the way a small server's does. The health path answers
 * at once (a health endpoint is cheap, even on a busy server).
 */
export class DropletServer {
  private readonly servers: http.Server[] = [];
  private readonly sockets = new Set<Socket>();
  private busy = 0;
  private readonly queue: Array<() => void> = [];
  served = 0;
  /** A fault: the health path answers 500 (the application is broken, the machine is up). */
  failingHealth = false;
  /** A fault: the application never comes up right (a bad image); the health path answers 503. */
  unhealthy = false;

  constructor(
    private readonly name: string,
    private readonly settings: CapacitySettings,
    private readonly healthPath = "/health",
  ) {}

  async listen(addresses: string[], port: number): Promise<void> {
    for (const address of addresses) {
      const server = http.createServer((req, res) => this.handle(req, res));
      server.keepAliveTimeout = 65_000;
      server.on("connection", (socket) => {
        this.sockets.add(socket);
        socket.on("close", () => this.sockets.delete(socket));
      });
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, address, () => resolve());
      });
      this.servers.push(server);
    }
  }

  get inFlight(): number {
    return this.busy + this.queue.length;
  }

  /** Stops the server: new connections are refused, open ones are cut (the machine is gone). */
  async close(): Promise<void> {
    await Promise.all(
      this.servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))),
    );
    for (const socket of this.sockets) socket.destroy();
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    if (req.url === this.healthPath) {
      const status = this.unhealthy ? 503 : this.failingHealth ? 500 : 200;
      res.writeHead(status, { "content-type": "text/plain" });
      res.end(status === 200 ? "ok\n" : "failing\n");
      return;
    }
    const started = Date.now();
    const serve = () => {
      this.busy++;
      setTimeout(() => {
        this.busy--;
        this.served++;
        const next = this.queue.shift();
        if (next) next();
        if (res.destroyed) return;
        res.writeHead(200, {
          "content-type": "text/plain",
          "x-droplet": this.name,
          "x-queued-ms": String(Date.now() - started - this.settings.serviceTimeMs),
        });
        res.end(`${this.name} served ${req.method} ${req.url}\n`);
      }, this.settings.serviceTimeMs);
    };
    // Like an application handling an upload, it starts work once the whole request has arrived.
    req.resume();
    req.once("end", () => {
      if (this.busy < this.settings.capacity) serve();
      else this.queue.push(serve);
    });
  }
}
