import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import {
  ERRORS_DOC,
  REASON_CODES_DOC,
  renderErrorsDoc,
  renderReasonCodesDoc,
} from "../../../scripts/gen-errors-doc.js";
import { ERROR_CODES } from "../../../src/errors.js";

describe("generated code references", () => {
  it("docs/errors.md is the catalogue's (run npm run docs:errors when this fails)", () => {
    assert.equal(readFileSync(ERRORS_DOC, "utf8"), renderErrorsDoc());
  });

  it("docs/reason-codes.md is the reason-code tables' (run npm run docs:errors when this fails)", () => {
    assert.equal(readFileSync(REASON_CODES_DOC, "utf8"), renderReasonCodesDoc());
  });

  it("every code has a meaning, a fix and exit status 1 or 2", () => {
    for (const [code, entry] of Object.entries(ERROR_CODES)) {
      assert.match(code, /^DOPROXY_[A-Z_]+$/);
      assert.ok(entry.meaning.length > 20 && entry.fix.length > 10, code);
      assert.ok(entry.exit === 1 || entry.exit === 2, code);
    }
  });
});
