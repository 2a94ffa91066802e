import { createPrivateKey, type KeyObject, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { createSecureContext } from "node:tls";
import { ConfigError } from "../errors.js";

export interface CertificatePair {
  cert: Buffer;
  key: Buffer;
}

export interface TlsFiles {
  certFile: string;
  keyFile: string;
}

function read(key: "tls-cert" | "tls-key", file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const reason =
      code === "ENOENT"
        ? "no such file"
        : code === "EISDIR"
          ? "is a directory, not a file"
          : code === "EACCES"
            ? "not readable by this user"
            : (code ?? (error as Error).message);
    throw new ConfigError(
      `[proxy] ${key} ${file}: ${reason}`,
      "set [proxy] tls-cert and tls-key to PEM files",
    );
  }
}

function certificateOf(pem: Buffer): X509Certificate | undefined {
  try {
    return new X509Certificate(pem);
  } catch {
    return undefined;
  }
}

function privateKeyOf(pem: Buffer): KeyObject | undefined {
  try {
    return createPrivateKey(pem);
  } catch {
    return undefined;
  }
}

/**
 * Reads `tls-cert` and `tls-key` and checks them as the listener will use them: each a readable
 * file (not a directory), a PEM certificate and a PEM private key, not swapped, the key the
 * certificate's, and accepted together by TLS. The one check for `config check`, the start of
 * `serve` and every certificate reload. Messages never contain key material.
 */
export function loadTlsFiles(files: TlsFiles): CertificatePair {
  const cert = read("tls-cert", files.certFile);
  const key = read("tls-key", files.keyFile);
  const certificate = certificateOf(cert);
  const privateKey = privateKeyOf(key);
  if (!certificate && !privateKey && privateKeyOf(cert) && certificateOf(key))
    throw new ConfigError(
      `[proxy] tls-cert and tls-key are swapped: ${files.certFile} holds a private key and ${files.keyFile} a certificate`,
      "exchange the two paths",
    );
  if (!certificate) throw new ConfigError(`[proxy] tls-cert ${files.certFile}: not a PEM certificate`);
  if (!privateKey)
    throw new ConfigError(
      `[proxy] tls-key ${files.keyFile}: not a PEM private key (an encrypted key needs a passphrase doproxy does not take)`,
    );
  if (!certificate.checkPrivateKey(privateKey))
    throw new ConfigError(
      `[proxy] tls-key ${files.keyFile} is not the key of the certificate in ${files.certFile}`,
      "use the key the certificate was issued for",
    );
  try {
    createSecureContext({ cert, key });
  } catch (error) {
    throw new ConfigError(
      `[proxy] tls-cert ${files.certFile} and tls-key ${files.keyFile}: ${(error as Error).message}`,
    );
  }
  return { cert, key };
}
