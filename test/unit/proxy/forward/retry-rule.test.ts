import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  attemptErrorCode,
  decideProxyRetry,
  type RetryInput,
} from "../../../../src/proxy/forward/retry-rule.js";

describe("proxy retry rule", () => {
  const base: RetryInput = {
    method: "GET",
    hasBody: false,
    code: "ECONNREFUSED",
    attempts: 1,
    retries: 1,
    answered: false,
  };
  const cases: Array<[string, Partial<RetryInput>, "retry" | "fail"]> = [
    ["refused GET within the retry budget", {}, "retry"],
    ["reset on a reused connection", { code: "ECONNRESET" }, "retry"],
    ["connect timeout", { code: "DOPROXY_CONNECT_TIMEOUT" }, "retry"],
    ["idempotent PUT and DELETE without a body", { method: "DELETE" }, "retry"],
    ["budget used up", { attempts: 2 }, "fail"],
    ["no retries configured", { retries: 0 }, "fail"],
    ["POST is not idempotent", { method: "POST" }, "fail"],
    ["a body cannot be replayed", { method: "PUT", hasBody: true }, "fail"],
    ["a response already started", { answered: true }, "fail"],
    ["not a connect failure", { code: "HPE_INVALID_CONSTANT" }, "fail"],
    ["second retry allowed by retries = 2", { attempts: 2, retries: 2 }, "retry"],
  ];
  for (const [name, change, expected] of cases) {
    it(name, () => assert.equal(decideProxyRetry({ ...base, ...change }), expected));
  }
});

describe("a failed attempt's error code, as the retry rule reads it", () => {
  const cases: Array<[string, string | undefined, string]> = [
    ["a refused connection keeps its errno code", "ECONNREFUSED", "ECONNREFUSED"],
    ["undici's connect timeout is a connect timeout", "UND_ERR_CONNECT_TIMEOUT", "DOPROXY_CONNECT_TIMEOUT"],
    ["a connection closed before any answer is a reset", "UND_ERR_SOCKET", "ECONNRESET"],
    ["a connection pool shut down under the request is a reset", "UND_ERR_DESTROYED", "ECONNRESET"],
    ["a malformed answer keeps its parser code", "HPE_INVALID_CONSTANT", "HPE_INVALID_CONSTANT"],
    ["no code at all", undefined, ""],
  ];
  for (const [name, code, expected] of cases) {
    it(name, () => assert.equal(attemptErrorCode({ code }), expected));
  }
});
