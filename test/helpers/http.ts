import http from "node:http";

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

/** One request to the proxy on loopback, with a client-side deadline so a test cannot hang. */
export function request(
  port: number,
  path = "/",
  options: {
    method?: string;
    headers?: http.OutgoingHttpHeaders;
    body?: string;
    timeoutMs?: number;
    keepAlive?: boolean;
    /** Send from this loopback address (a different client to the proxy); implies a fresh connection. */
    localAddress?: string;
  } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: "127.0.0.1",
        port,
        path,
        method: options.method ?? "GET",
        headers: options.headers,
        agent: options.keepAlive === false || options.localAddress ? false : agent,
        ...(options.localAddress ? { localAddress: options.localAddress } : {}),
      },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (chunk) => {
          body += chunk;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        res.on("error", reject);
      },
    );
    req.setTimeout(options.timeoutMs ?? 15_000, () => req.destroy(new Error("client timeout")));
    req.on("error", reject);
    req.end(options.body);
  });
}

/** Sends `count` GETs with `concurrency` clients, every one must answer 200; tallies answers by X-Backend. */
export async function tallyByBackend(
  port: number,
  count: number,
  concurrency: number,
  path = "/work",
): Promise<Record<string, number>> {
  const tally: Record<string, number> = {};
  let sent = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (sent < count) {
        sent++;
        const reply = await request(port, path);
        if (reply.status !== 200) throw new Error(`expected 200, got ${reply.status}: ${reply.body}`);
        const name = reply.headers["x-backend"] as string;
        tally[name] = (tally[name] ?? 0) + 1;
      }
    }),
  );
  return tally;
}
