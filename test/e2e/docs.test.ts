import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { canIsolateNetwork, checkDocs } from "../../scripts/check-docs.js";

describe("the documentation", () => {
  it("has links that resolve, commands that exist, and README's and getting-started's blocks run against the simulator", async (t) => {
    if (!canIsolateNetwork())
      t.diagnostic("no network namespace here: the blocks run with their loopback ports replaced");
    const problems = await checkDocs();
    assert.deepEqual(problems, [], problems.join("\n\n"));
  });
});
