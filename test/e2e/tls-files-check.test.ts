import assert from "node:assert/strict";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { freePort } from "../helpers/backend.js";
import { cleanupAll, runCliAsync, serveConfig, startDaemon, workspace } from "../helpers/cli.js";
import { makeCertificate } from "../helpers/tls.js";

/**
 * `config check` loads the TLS files exactly as `serve` does (one shared function): whatever
 * `serve` cannot load, both refuse with the same message and exit code 2, before anything listens.
 */
describe("TLS files: config check refuses what serve would", () => {
  const cases: Array<{ name: string; cert: string; key: string; message: RegExp }> = [
    {
      name: "a missing certificate",
      cert: "gone.cert.pem",
      key: "a.key.pem",
      message: /\[proxy\] tls-cert \S+gone\.cert\.pem: no such file/,
    },
    {
      name: "a missing key",
      cert: "a.cert.pem",
      key: "gone.key.pem",
      message: /\[proxy\] tls-key \S+gone\.key\.pem: no such file/,
    },
    {
      name: "key and certificate swapped",
      cert: "a.key.pem",
      key: "a.cert.pem",
      message:
        /\[proxy\] tls-cert and tls-key are swapped: \S+a\.key\.pem holds a private key and \S+a\.cert\.pem a certificate/,
    },
    {
      name: "a key that is not the certificate's",
      cert: "a.cert.pem",
      key: "b.key.pem",
      message: /\[proxy\] tls-key \S+b\.key\.pem is not the key of the certificate in \S+a\.cert\.pem/,
    },
    {
      name: "a directory as the certificate",
      cert: "certs",
      key: "a.key.pem",
      message: /\[proxy\] tls-cert \S+certs: is a directory, not a file/,
    },
    {
      name: "a directory as the key",
      cert: "a.cert.pem",
      key: "certs",
      message: /\[proxy\] tls-key \S+certs: is a directory, not a file/,
    },
    {
      name: "a certificate cut short (half written)",
      cert: "half.cert.pem",
      key: "a.key.pem",
      message: /\[proxy\] tls-cert \S+half\.cert\.pem: not a PEM certificate/,
    },
  ];

  for (const { name, cert, key, message } of cases)
    it(name, async () => {
      const ws = workspace("");
      try {
        makeCertificate(ws.dir, "a");
        makeCertificate(ws.dir, "b");
        mkdirSync(path.join(ws.dir, "certs"));
        const whole = readFileSync(path.join(ws.dir, "a.cert.pem"), "utf8");
        writeFileSync(path.join(ws.dir, "half.cert.pem"), whole.slice(0, Math.floor(whole.length / 2)));
        const port = await freePort();
        const good = serveConfig(port, { proxy: 'tls-cert = "a.cert.pem"\ntls-key = "a.key.pem"' });
        ws.writeConfig(good);
        const ok = await runCliAsync(ws, ["config", "check"]);
        assert.equal(ok.status, 0, ok.stderr);
        assert.match(ok.stdout, /proxy {6}127\.0\.0\.1:\d+ \(round-robin, TLS\)/);

        ws.writeConfig(serveConfig(port, { proxy: `tls-cert = "${cert}"\ntls-key = "${key}"` }));
        const check = await runCliAsync(ws, ["config", "check"]);
        assert.equal(check.status, 2, check.stdout + check.stderr);
        assert.match(check.stderr, message);
        assert.doesNotMatch(check.stderr, /PRIVATE KEY|\n\s+at /, "no key material, no stack trace");

        const serve = startDaemon(ws, ["serve"]);
        assert.equal(await serve.exited, 2, serve.output());
        assert.match(serve.output(), message);
        assert.ok(!serve.output().includes("proxy listening"), "serve refused before listening");
        // The same first line from both.
        assert.equal(serve.output().split("\n")[0], check.stderr.split("\n")[0]);
      } finally {
        cleanupAll(ws);
      }
    });
});
