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

/** Log lines held in memory while stdout is not being read; past this, lines are dropped. */
const MAX_BUFFERED_BYTES = 16 * 1024 * 1024;
/** How long the last lines may take to leave at shutdown before they are given up. */
const EXIT_FLUSH_MS = 2_000;

/** After this time, a write that would block (EAGAIN) is no longer retried: set when the process ends. */
let giveUpAt = Number.POSITIVE_INFINITY;
const destinations = new WeakMap<Logger, SonicBoom>();
process.once("exit", () => {
  giveUpAt = Math.min(giveUpAt, Date.now() + EXIT_FLUSH_MS);
});

type SonicBoom = ReturnType<typeof pino.destination>;

/**
 * pino JSON logs. The destination is asynchronous (writes coalesce while one is pending) so the
 * access log never blocks the proxy's hot path on a slow terminal or pipe. When stdout is not read
 * at all (a stuck log shipper), at most 16 MiB wait in memory and newer lines are dropped, and
 * the final flush gives up after two seconds rather than hang the process.
 */
export function createLogger(options: LogOptions = {}): Logger {
  const fd = options.destination === "stderr" ? 2 : 1;
  const destination = pino.destination({
    fd,
    sync: false,
    maxLength: MAX_BUFFERED_BYTES,
    retryEAGAIN: () => Date.now() < giveUpAt,
  });
  const logger = pino(
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
  destinations.set(logger, destination);
  return logger;
}

/**
 * Writes pre-built JSON lines straight to a logger's destination (the access log builds its own),
 * so they share its buffering and its bound when stdout is not read.
 */
export function lineWriter(logger: Logger): (chunk: string) => void {
  const stream = (logger as unknown as Record<symbol, { write(chunk: string): unknown }>)[
    pino.symbols.streamSym
  ];
  if (!stream) throw new Error("the logger has no destination stream");
  return (chunk) => {
    stream.write(chunk);
  };
}

/** Writes the last lines (for at most two seconds) and closes the destination; call before exit. */
export function flushLog(logger: Logger): void {
  // A child logger (a proxy worker's) writes to its root's destination.
  const destination =
    destinations.get(logger) ??
    ((logger as unknown as Record<symbol, SonicBoom | undefined>)[pino.symbols.streamSym] as
      | SonicBoom
      | undefined);
  if (!destination || typeof destination.flushSync !== "function") return;
  giveUpAt = Math.min(giveUpAt, Date.now() + EXIT_FLUSH_MS);
  try {
    destination.flushSync();
  } catch {
    // stdout is closed or still blocked after the grace period: those lines are lost.
  }
  try {
    destination.destroy(); // pino's own exit hook skips a destroyed stream instead of retrying forever
  } catch {
    // already closed
  }
}
