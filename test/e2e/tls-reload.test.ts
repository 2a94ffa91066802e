import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { copyFileSync, renameSync } from "node:fs";
import type http from "node:http";
import { request as httpRequest } from "node:http";
import https from "node:https";
import path from "node:path";
import { after, describe, it } from "node:test";
import tls from "node:tls";
import { freePort, startBackend } from "../helpers/backend.js";
import { runCliAsync, serveConfig, startServe, workspace } from "../helpers/cli.js";
import { makeCertificate } from "../helpers/tls.js";
import { waitFor } from "../helpers/wait.js";

/** The fingerprint of the certificate a new TLS connection to the proxy is given. */
function servedFingerprint(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: "127.0.0.1", port, rejectUnauthorized: false }, () => {
      const fingerprint = socket.getPeerCertificate().fingerprint256;
      socket.end();
      resolve(fingerprint);
    });
    socket.setTimeout(10_000, () => socket.destroy(new Error("TLS timeout")));
    socket.on("error", reject);
  });
}

/** A plain-HTTP request with a chosen Host header (fetch cannot set Host). */
function plain(
  port: number,
  method: string,
  target: string,
  host: string,
): Promise<{ status: number; location: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: "127.0.0.1", port, method, path: target, headers: { host }, agent: false },
      (res) => {
        res.resume();
        res.on("end", () => resolve({ status: res.statusCode ?? 0, location: res.headers.location }));
      },
    );
    req.on("error", reject);
    req.end(method === "POST" ? "x" : undefined);
  });
}

function fingerprintOf(dir: string, name: string): string {
  const text = execFileSync(
    "openssl",
    ["x509", "-in", `${name}.cert.pem`, "-noout", "-fingerprint", "-sha256"],
    {
      cwd: dir,
      encoding: "utf8",
    },
  );
  return text.trim().split("=")[1] as string;
}

describe("TLS certificate reload", () => {
  const cleanup: Array<() => Promise<unknown> | unknown> = [];
  after(async () => {
    for (const step of cleanup.reverse()) await step();
  });

  it("serves a renewed certificate to new connections while a request on an old one completes; a broken pair keeps the old one", async () => {
    const port = await freePort();
    const redirectPort = await freePort();
    const ws = workspace("");
    for (const name of ["first", "second"]) makeCertificate(ws.dir, name);
    copyFileSync(path.join(ws.dir, "first.cert.pem"), path.join(ws.dir, "cert.pem"));
    copyFileSync(path.join(ws.dir, "first.key.pem"), path.join(ws.dir, "key.pem"));
    ws.writeConfig(
      serveConfig(port, {
        proxy: `tls-cert = "cert.pem"\ntls-key = "key.pem"\nredirect-http = "127.0.0.1:${redirectPort}"`,
      }),
    );
    const held: http.ServerResponse[] = [];
    const backend = await startBackend({
      name: "app",
      handler: (req, res) => {
        if (req.url !== "/long") return false;
        held.push(res);
        return true;
      },
    });
    const serve = await startServe(ws);
    cleanup.push(
      () => ws.cleanup(),
      () => backend.close(),
      () => serve.stop(),
    );
    assert.equal((await runCliAsync(ws, ["droplets", "add", "--address", backend.address])).status, 0);

    const first = fingerprintOf(ws.dir, "first");
    const second = fingerprintOf(ws.dir, "second");
    assert.equal(await servedFingerprint(port), first);

    // A long request on a connection made with the first certificate.
    const long = new Promise<number>((resolve, reject) => {
      const req = https.request(
        { host: "127.0.0.1", port, path: "/long", rejectUnauthorized: false, agent: false },
        (res) => {
          res.resume();
          res.on("end", () => resolve(res.statusCode ?? 0));
        },
      );
      req.on("error", reject);
      req.end();
    });
    await waitFor(() => held.length === 1, "the long request at the backend");

    // A renewal as certbot does it: new files moved into place.
    copyFileSync(path.join(ws.dir, "second.key.pem"), path.join(ws.dir, "key.new"));
    copyFileSync(path.join(ws.dir, "second.cert.pem"), path.join(ws.dir, "cert.new"));
    renameSync(path.join(ws.dir, "key.new"), path.join(ws.dir, "key.pem"));
    renameSync(path.join(ws.dir, "cert.new"), path.join(ws.dir, "cert.pem"));
    await waitFor(
      async () => (await servedFingerprint(port)) === second,
      "the renewed certificate served",
      20_000,
      200,
    );

    held[0]?.end("long done");
    assert.equal(await long, 200, "the request on the old connection completed");

    // A certificate without its key: reported, and the renewed pair stays in force.
    copyFileSync(path.join(ws.dir, "first.cert.pem"), path.join(ws.dir, "cert.pem"));
    await serve.waitForLog(
      (l) => l.msg === "certificate reload failed; new connections keep the current certificate",
      "the failed reload",
      20_000,
    );
    assert.equal(await servedFingerprint(port), second);
    const failure = serve.logs().find((l) => l.msg?.toString().startsWith("certificate reload failed"));
    assert.doesNotMatch(JSON.stringify(failure), /PRIVATE KEY/, "no key material in the log");

    // redirect-http answers plain HTTP with the HTTPS address of the same host and target.
    const redirect = await plain(redirectPort, "GET", "/login?next=%2Fhome", `shop.example:${redirectPort}`);
    assert.equal(redirect.status, 301);
    assert.equal(redirect.location, `https://shop.example:${port}/login?next=%2Fhome`);
    const post = await plain(redirectPort, "POST", "/form", `shop.example:${redirectPort}`);
    assert.equal(post.status, 308, "other methods keep their method and body");
  });
});
