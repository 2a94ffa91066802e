/**
 * Secrets (API token, admin token) are registered here once they are read from configuration,
 * so that any text leaving the process — error messages, log lines — can be scrubbed of them
 * even when a library echoes a header or URL back in an error.
 */
const secrets = new Set<string>();

export function registerSecret(value: string | undefined): void {
  if (value && value.length >= 4) secrets.add(value);
}

export function scrubSecrets(text: string): string {
  let out = text;
  for (const secret of secrets) out = out.split(secret).join("[redacted]");
  return out;
}
