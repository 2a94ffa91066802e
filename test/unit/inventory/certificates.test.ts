import assert from "node:assert/strict";
import { it } from "node:test";
import { FencedError } from "../../../src/errors.js";
import { certificateName } from "../../../src/inventory/certificates.js";
import { describeEachStore } from "../../helpers/stores.js";

describeEachStore("ACME certificates in the inventory", (stores) => {
  it("keeps the account, the certificate and its attempts; a failure never removes the certificate", async () => {
    const inventory = await stores.open();
    try {
      const { certificates } = inventory;
      const t = 1_800_000_000_000;
      const account = await certificates.saveAccount({
        directory: "https://ca/dir",
        keyPem: "K1",
        url: null,
        email: "a@b.c",
        createdAt: t,
      });
      assert.equal(account.keyPem, "K1");
      const again = await certificates.saveAccount({ ...account, keyPem: "K2" });
      assert.equal(again.keyPem, "K1", "a second proxy's account does not replace the first");
      await certificates.setAccountUrl("https://ca/dir", "https://ca/acct/1");
      assert.equal((await certificates.account("https://ca/dir"))?.url, "https://ca/acct/1");

      const name = certificateName(["www.example.com", "Example.com"]);
      assert.equal(name, "example.com,www.example.com");
      const fresh = await certificates.ensure(["example.com", "www.example.com"], "https://ca/dir", t);
      assert.deepEqual(fresh.domains, ["example.com", "www.example.com"]);
      assert.equal(fresh.certPem, null);
      const v0 = await certificates.version();
      await certificates.saveIssued(
        name,
        {
          certPem: "C",
          keyPem: "KEY",
          notBefore: t,
          notAfter: t + 90_000,
          renewAt: t + 60_000,
          directory: "https://ca/dir",
        },
        t + 1,
      );
      assert.notEqual(await certificates.version(), v0, "a new certificate moves the version");
      await certificates.recordFailure(
        name,
        { failures: 2, nextAttemptAt: t + 5_000, reason: "acme-rate-limited", error: "429" },
        t + 2,
      );
      const row = await certificates.get(name);
      assert.equal(row?.certPem, "C", "the serving certificate stays");
      assert.equal(row?.notAfter, t + 90_000);
      assert.equal(row?.failures, 2);
      assert.equal(row?.lastReason, "acme-rate-limited");
      assert.equal(await certificates.requestRenewal(name, t + 3), 1);
      const requested = await certificates.get(name);
      assert.equal(requested?.renewRequested, true);
      assert.equal(requested?.nextAttemptAt, 0);
      assert.equal((await certificates.list()).length, 1);
    } finally {
      await inventory.close();
    }
  });

  it("answers challenges while they last and forgets them after", async () => {
    const inventory = await stores.open();
    try {
      const { certificates } = inventory;
      const now = Date.now();
      await certificates.putChallenge({
        token: "tok",
        kind: "http-01",
        domain: "example.com",
        keyAuthorization: "tok.thumb",
        certPem: null,
        keyPem: null,
        expiresAt: now + 60_000,
      });
      await certificates.putChallenge({
        token: "alpn",
        kind: "tls-alpn-01",
        domain: "example.com",
        keyAuthorization: "alpn.thumb",
        certPem: "ALPN-CERT",
        keyPem: "ALPN-KEY",
        expiresAt: now + 60_000,
      });
      assert.equal(await certificates.httpChallenge("tok", now), "tok.thumb");
      assert.equal(await certificates.httpChallenge("alpn", now), undefined, "not an http-01 token");
      assert.equal((await certificates.alpnChallenge("EXAMPLE.com", now))?.certPem, "ALPN-CERT");
      assert.equal(await certificates.httpChallenge("tok", now + 120_000), undefined, "expired");
      assert.equal(await certificates.pruneChallenges(now + 120_000), 2);
    } finally {
      await inventory.close();
    }
  });

  it("the leader's writes are fenced: a lost term writes nothing", async () => {
    const inventory = await stores.open();
    try {
      const now = Date.now();
      const token = await inventory.leases.acquireToken("leader", "A", 60_000, now);
      assert.equal(token, 1);
      await inventory.certificates.ensure(["example.com"], "https://ca/dir");
      const leader = inventory.certificates.fencedBy(() => ({ lease: "leader", holder: "A", token: 1 }));
      const stale = inventory.certificates.fencedBy(() => ({ lease: "leader", holder: "A", token: 0 }));
      const issued = { certPem: "C", keyPem: "K", notBefore: 0, notAfter: 1, renewAt: 1, directory: "d" };
      await assert.rejects(stale.saveIssued("example.com", issued), FencedError);
      assert.equal((await inventory.certificates.get("example.com"))?.certPem, null);
      await leader.saveIssued("example.com", issued);
      assert.equal((await inventory.certificates.get("example.com"))?.certPem, "C");
    } finally {
      await inventory.close();
    }
  });
});
