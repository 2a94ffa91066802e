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
  /** Other processes write to the same stdout (a proxy worker): see `atomicWrites`. */
  sharedDestination?: boolean;
}

/** Log lines held in memory while stdout is not being read; past this, lines are dropped. */
const MAX_BUFFERED_BYTES = 16 * 1024 * 1024;
/**
 * POSIX makes a pipe write of at most PIPE_BUF (4096 on Linux) bytes atomic. With proxy workers,
 * several processes write to the same stdout, and on a full pipe a larger write can be split
 * around another process's line, corrupting both; so in a process group every write is whole
 * lines of at most this many bytes (see `atomicWrites`).
 */
export const ATOMIC_WRITE_BYTES = 4096;
/** One process alone on stdout writes in larger pieces: fewer writes for the same lines. */
const SOLE_WRITER_BYTES = 64 * 1024;
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
    maxWrite: options.sharedDestination ? ATOMIC_WRITE_BYTES : SOLE_WRITER_BYTES,
    retryEAGAIN: () => Date.now() < giveUpAt,
  });
  const logger = pino(
    {
      level: options.level ?? process.env.DOPROXY_LOG_LEVEL ?? "info",
      base: { pid: process.pid },
      redact: { paths: REDACT_PATHS, censor: "[redacted]" },
      formatters: { level: (label) => ({ level: label }) },
      hooks: {
        // A message string, or a string field beside it (an error's message), can carry a secret a
        // library echoed back; scrub them before writing.
        logMethod(args, method) {
          const scrubbed = args.map((arg) =>
            typeof arg === "string" ? scrubSecrets(arg) : isPlainObject(arg) ? scrubFields(arg) : arg,
          );
          method.apply(this, scrubbed as Parameters<typeof method>);
        },
      },
    },
    destination,
  );
  destinations.set(logger, destination);
  return logger;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && Object.getPrototypeOf(value) === Object.prototype;
}

/** The object with each of its string fields scrubbed (the same object when none changed). */
function scrubFields(fields: Record<string, unknown>): Record<string, unknown> {
  let out: Record<string, unknown> | undefined;
  for (const [key, value] of Object.entries(fields)) {
    if (typeof value !== "string") continue;
    const clean = scrubSecrets(value);
    if (clean !== value) {
      out ??= { ...fields };
      out[key] = clean;
    }
  }
  return out ?? fields;
}

/**
 * From now on the logger's destination writes at most ATOMIC_WRITE_BYTES at a time, whole lines
 * each (a longer line alone), so no other process writing to the same pipe can split one: the
 * `serve` primary calls this when it starts proxy workers. The destination groups the lines it is
 * given and never splits one, as long as each chunk it is handed is whole lines of at most that
 * size (pino's lines are one each; the access log hands its batches over in such pieces).
 */
export function atomicWrites(logger: Logger): void {
  const destination = destinationOf(logger);
  if (destination) (destination as unknown as { maxWrite: number }).maxWrite = ATOMIC_WRITE_BYTES;
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

/** The destination a logger writes to: its own, or its root's for a child (a proxy worker's). */
function destinationOf(logger: Logger): SonicBoom | undefined {
  const destination =
    destinations.get(logger) ??
    ((logger as unknown as Record<symbol, SonicBoom | undefined>)[pino.symbols.streamSym] as
      | SonicBoom
      | undefined);
  return destination && typeof destination.flushSync === "function" ? destination : undefined;
}

/** Writes the last lines (for at most two seconds) and closes the destination; call before exit. */
export function flushLog(logger: Logger): void {
  const destination = destinationOf(logger);
  if (!destination) return;
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
