import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseConfigText } from "../../../src/config/load.js";
import { ConfigError, InventoryError } from "../../../src/errors.js";
import { openInventory } from "../../../src/inventory/open.js";
import { scrubSecrets } from "../../../src/util/secrets.js";
import { redactUrl } from "../../../src/util/url-secrets.js";
import { freePort } from "../../helpers/backend.js";

describe("[inventory] url: the PostgreSQL inventory", () => {
  it("takes the password from the environment, and registers it as a secret to scrub", () => {
    const config = parseConfigText(
      '[inventory]\nurl = "postgres://doproxy:${DB_PASSWORD}@db.internal:25060/doproxy?sslmode=require"\n',
      "/etc/doproxy/doproxy.toml",
      { DB_PASSWORD: "s3cr%2Ft-pw" },
    );
    assert.equal(
      config.inventory.url,
      "postgres://doproxy:s3cr%2Ft-pw@db.internal:25060/doproxy?sslmode=require",
    );
    assert.equal(
      scrubSecrets("auth failed for s3cr/t-pw"),
      "auth failed for [redacted]",
      "the decoded password",
    );
    assert.equal(
      redactUrl(config.inventory.url as string),
      "postgres://doproxy:***@db.internal:25060/doproxy?sslmode=require",
    );
  });

  it("is unset by default: the SQLite file at [inventory] path", () => {
    assert.equal(parseConfigText("", undefined, {}).inventory.url, undefined);
  });

  it("refuses what is not a PostgreSQL URL, naming the key and never showing the value (it may hold a password)", () => {
    try {
      parseConfigText(
        '[inventory]\nurl = "mysql://root:hunter22@db/doproxy"\n',
        "/etc/doproxy/doproxy.toml",
        {},
      );
      assert.fail("expected a ConfigError");
    } catch (error) {
      assert.ok(error instanceof ConfigError);
      assert.match(error.message, /doproxy\.toml:2: \[inventory\] url: expected a PostgreSQL URL such as/);
      assert.doesNotMatch(error.message, /hunter22/);
    }
  });
});

describe("a PostgreSQL inventory out of reach", () => {
  it("is a clear InventoryError with a hint, and the password is never in it", async () => {
    const port = await freePort(); // nothing listens there
    await assert.rejects(
      () =>
        openInventory({ path: "unused.db", url: `postgres://doproxy:hunter22@127.0.0.1:${port}/doproxy` }),
      (error: unknown) => {
        assert.ok(error instanceof InventoryError, String(error));
        assert.match(
          error.message,
          new RegExp(
            `^postgres://doproxy:\\*\\*\\*@127\\.0\\.0\\.1:${port}/doproxy: cannot reach the PostgreSQL inventory: `,
          ),
        );
        assert.match(error.hint ?? "", /\[inventory\] url/);
        assert.doesNotMatch(`${error.message} ${error.hint}`, /hunter22/);
        return true;
      },
    );
  });
});
