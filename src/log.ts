import pino, { type Logger } from "pino";
import { scrubSecrets } from "./util/secrets.js";

export type { Logger };

/** Keys that may carry a secret anywhere in a log object; pino replaces their values. */
const REDACT_PATHS = [
  "token",
  "*.token",
  "*.*.token",
  "authorization",
  "*.authorization",
  "headers.authorization",
  "*.headers.authorization",
];

export interface LogOptions {
  level?: string;
  /** "stdout" for serve and sim (JSON lines), "stderr" for one-shot commands whose stdout is for people. */
  destination?: "stdout" | "stderr";
}

/**
 * pino JSON logs. The destination is asynchronous (writes coalesce while one is pending) so that the access log never blocks
 * the proxy's hot path on a slow terminal or pipe; `flushLog` drains it at shutdown.
 */
export function createLogger(options: LogOptions = {}): Logger {
  const fd = options.destination === "stderr" ? 2 : 1;
  const destination = pino.destination({ fd, sync: false });
  return pino(
    {
      level: options.level ?? process.env.DOPROXY_LOG_LEVEL ?? "info",
      base: { pid: process.pid },
      redact: { paths: REDACT_PATHS, censor: "[redacted]" },
      formatters: { level: (label) => ({ level: label }) },
      hooks: {
        // A message string can carry a secret a library echoed back; scrub it before writing.
        logMethod(args, method) {
          const scrubbed = args.map((arg) => (typeof arg === "string" ? scrubSecrets(arg) : arg));
          method.apply(this, scrubbed as Parameters<typeof method>);
        },
      },
    },
    destination,
  );
}

export function flushLog(logger: Logger): void {
  try {
    logger.flush();
  } catch {
    // The destination may already be closed at exit; nothing useful remains to do.
  }
}
