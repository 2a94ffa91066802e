import { DoproxyError } from "../errors.js";
import { scrubSecrets } from "../util/secrets.js";

/**
 * Runs a command's action and turns any error into one or two lines for a person (never a stack
 * trace, never a secret) and DESIGN.md's exit code: 2 bad usage or configuration, 1 failure.
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
    process.stderr.write(`doproxy: ${scrubSecrets(error.message)}\n`);
    if (error.hint) process.stderr.write(`  hint: ${scrubSecrets(error.hint)}\n`);
    process.exit(error.exitCode);
  }
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`doproxy: ${scrubSecrets(message)}\n`);
  if (process.env.DOPROXY_DEBUG && error instanceof Error && error.stack)
    process.stderr.write(`${scrubSecrets(error.stack)}\n`);
  process.exit(1);
}
