import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { redactUrl, urlSecrets } from "../../../src/util/url-secrets.js";

describe("redactUrl and urlSecrets: the one place that knows where a URL carries secrets", () => {
  const cases: Array<{ url: string; shown: string; secrets: string[] }> = [
    {
      url: "postgres://doproxy:hunter22@db.internal:25060/doproxy?sslmode=require",
      shown: "postgres://doproxy:***@db.internal:25060/doproxy?sslmode=require",
      secrets: ["hunter22"],
    },
    {
      url: "postgres://u@host/db?password=q-secret-1",
      shown: "postgres://u@host/db?password=***",
      secrets: ["q-secret-1"],
    },
    {
      url: "postgresql://u@host:5432/db?sslmode=verify-full&sslpassword=kp%2Fss&sslkey=/etc/k/client.key&application_name=x",
      shown: "postgresql://u@host:5432/db?sslmode=verify-full&sslpassword=***&sslkey=***&application_name=x",
      secrets: ["kp%2Fss", "kp/ss", "/etc/k/client.key"],
    },
    {
      url: "postgres://u:pw%40x@host/db?PassWord=a&passfile=/p&token=t&api_key=k&keepalives=1",
      shown: "postgres://u:***@host/db?PassWord=***&passfile=***&token=***&api_key=***&keepalives=1",
      secrets: ["pw%40x", "pw@x", "a", "/p", "t", "k"],
    },
    {
      url: "postgres://u@host/db?password",
      shown: "postgres://u@host/db?password",
      secrets: [],
    },
    { url: "postgres://u@host/db", shown: "postgres://u@host/db", secrets: [] },
    { url: "postgres://u:p@[bad/db?password=x", shown: "postgres://(unparsable URL)", secrets: [] },
  ];
  for (const { url, shown, secrets } of cases) {
    it(url, () => {
      assert.equal(redactUrl(url), shown);
      assert.deepEqual(urlSecrets(url), secrets);
    });
  }
});
