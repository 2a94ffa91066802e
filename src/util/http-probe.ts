import http from "node:http";

export interface ProbeResult {
  ok: boolean;
  reason: string;
}

/**
 * One active health check: GET the health path on its own short-lived connection (never a pooled
 * one, so a check tells whether a *new* connection works). 2xx and 3xx pass.
 */
export function probe(target: URL, path: string, timeoutMs: number): Promise<ProbeResult> {
  return new Promise((resolve) => {
    let settled = false;
    const finish = (result: ProbeResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(result);
    };
    let req: http.ClientRequest;
    try {
      req = http.request(
        {
          host: target.hostname.replace(/^\[|\]$/g, ""),
          port: Number(target.port),
          path,
          method: "GET",
          agent: false,
          headers: { "user-agent": "doproxy-health", connection: "close" },
        },
        (res) => {
          res.resume();
          const status = res.statusCode ?? 0;
          finish(
            status >= 200 && status < 400
              ? { ok: true, reason: `HTTP ${status}` }
              : { ok: false, reason: `health check answered HTTP ${status}` },
          );
        },
      );
    } catch (error) {
      // The configuration is validated, so this is a bug; a failed check, never a crash.
      resolve({ ok: false, reason: `health check could not be sent: ${(error as Error).message}` });
      return;
    }
    const timer = setTimeout(() => {
      finish({ ok: false, reason: `health check timed out after ${timeoutMs}ms` });
      req.destroy();
    }, timeoutMs);
    req.on("error", (error: NodeJS.ErrnoException) =>
      finish({ ok: false, reason: `health check failed: ${error.code ?? error.message}` }),
    );
    req.end();
  });
}
