import { execFileSync } from "node:child_process";

/** A fresh self-signed certificate and key (P-256: quick to make) named `<name>.cert.pem`/`.key.pem`. */
export function makeCertificate(dir: string, name: string): void {
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      `${name}.key.pem`,
      "-out",
      `${name}.cert.pem`,
      "-days",
      "1",
      "-subj",
      `/CN=${name}`,
    ],
    { cwd: dir, stdio: "ignore" },
  );
}
