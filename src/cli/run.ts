import { DoproxyError, ERROR_CODES } from "../errors.js";
import { flushLog, type Logger } from "../log.js";
import { scrubSecrets } from "../util/secrets.js";

/**
 * Runs a command's action and turns any error into one or two lines for a person (never a stack
 * trace, never a secret), led by the error's code, and the exit status the catalogue (errors.ts) gives
 * that code: 2 bad usage or configuration, 1 failure.
 */
export function action<A extends unknown[]>(
  fn: (...args: A) => Promise<void> | void,
): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (error) {
      reportAndExit(error);
    }
  };
}

export function reportAndExit(error: unknown): never {
  if (error instanceof DoproxyError) {
    process.stderr.write(`doproxy: [${error.code}] ${scrubSecrets(error.message)}\n`);
    if (error.hint) process.stderr.write(`  hint: ${scrubSecrets(error.hint)}\n`);
    process.exit(ERROR_CODES[error.code].exit);
  }
  // Anything else is outside the catalogue: a system failure underneath, or a bug.
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`doproxy: [DOPROXY_UNEXPECTED] ${scrubSecrets(message)}\n`);
  if (process.env.DOPROXY_DEBUG && error instanceof Error && error.stack)
    process.stderr.write(`${scrubSecrets(error.stack)}\n`);
  process.exit(ERROR_CODES.DOPROXY_UNEXPECTED.exit);
}

/**
 * No input may end a `serve` process; an error that escapes every handler is a bug. It is logged
 * with bug: true (the tests fail on any such line). A rejection leaves no state half-changed, so
 * serving goes on; after an uncaught exception the process state is unknown, so it exits for the
 * supervisor (systemd, a container runtime, the cluster primary) to restart it.
 */
export function logBugs(log: Logger): void {
  process.on("unhandledRejection", (reason) =>
    log.error({ bug: true, err: (reason as Error)?.stack ?? String(reason) }, "BUG: unhandled rejection"),
  );
  process.on("uncaughtException", (error) => {
    log.fatal({ bug: true, err: error.stack ?? String(error) }, "BUG: uncaught exception");
    flushLog(log);
    process.exit(70);
  });
}
