/**
 * When a failed attempt may be sent again to another backend. Pure, like the API's decideRetry:
 * tested with a table.
 */

/** Error codes meaning the backend never received (or never started on) the request. */
const CONNECT_FAILURES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EPIPE",
  "ETIMEDOUT",
  "EADDRNOTAVAIL",
  "DOPROXY_CONNECT_TIMEOUT",
]);

/** Methods RFC 9110 §9.2.2 calls idempotent: safe to send again. */
const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"]);

/**
 * undici's codes for a request that never got an answer, in the errno terms the rule speaks:
 * its connect timeout is a connect timeout; a connection closed (or a client shut down) before
 * any answer is a reset. Anything else keeps its own code.
 */
const UNDICI_CODES: Record<string, string> = {
  UND_ERR_CONNECT_TIMEOUT: "DOPROXY_CONNECT_TIMEOUT",
  UND_ERR_SOCKET: "ECONNRESET",
  UND_ERR_CLOSED: "ECONNRESET",
  UND_ERR_DESTROYED: "ECONNRESET",
};

/** The error code of a failed attempt, as this rule reads it. */
export function attemptErrorCode(error: { code?: string }): string {
  const code = error.code ?? "";
  return UNDICI_CODES[code] ?? code;
}

export function isConnectFailure(code: string): boolean {
  return CONNECT_FAILURES.has(code);
}

export interface RetryInput {
  method: string;
  /** The request carries a body: it streamed to the failed backend and cannot be replayed. */
  hasBody: boolean;
  /** The error code of the failed attempt (attemptErrorCode: an errno code or DOPROXY_CONNECT_TIMEOUT). */
  code: string;
  /** Attempts made so far, the failed one included. */
  attempts: number;
  /** [proxy] retries: how many further attempts are allowed. */
  retries: number;
  /** Part of a response already reached the client. */
  answered: boolean;
}

export type RetryDecision = "retry" | "fail";

export function decideProxyRetry(input: RetryInput): RetryDecision {
  if (input.answered || input.hasBody) return "fail";
  if (!isConnectFailure(input.code)) return "fail";
  if (!IDEMPOTENT.has(input.method)) return "fail";
  return input.attempts <= input.retries ? "retry" : "fail";
}
