import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "../log.js";

/** What the access log needs from one finished request. */
export interface AccessRecord {
  startedAt: number;
  attempts: number;
  rttMs: number | undefined;
  servedBy: string | undefined;
  error: string | undefined;
  /** Lines of the same kind left out since the last one written (sampled rejections). */
  suppressed?: number;
}

/** One `request` line per client request: method, target, status, backend, timings, attempts, error. */
export function writeAccessLog(
  log: Logger,
  req: IncomingMessage,
  res: ServerResponse,
  record: AccessRecord,
  now: number,
): void {
  if (!log.isLevelEnabled("info")) return;
  log.info(
    {
      method: req.method,
      path: req.url,
      status: res.headersSent ? res.statusCode : 0,
      backend: record.servedBy ?? null,
      rtt_ms: record.rttMs === undefined ? null : Math.round(record.rttMs * 100) / 100,
      total_ms: Math.round((now - record.startedAt) * 100) / 100,
      attempts: record.attempts,
      ...(record.error ? { error: record.error } : {}),
      ...(record.suppressed ? { suppressed: record.suppressed } : {}),
    },
    "request",
  );
}
