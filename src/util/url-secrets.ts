/**
 * The one place that knows where a URL carries secrets: the user-info password
 * (`postgres://u:PASSWORD@host/db`) and query parameters that hold a password, a key or a token
 * (`?password=…`, `sslpassword`, `sslkey`, `passfile`, `token`, …; node-postgres reads several of
 * them). Every output that shows a URL (config check, the start-up log, errors) goes through
 * `redactUrl`; `urlSecrets` gives the values to register with `registerSecret`, so a library that
 * echoes one of them back is scrubbed as well.
 */

/** Query parameter names whose values are secret (matched anywhere in the name, any case). */
const SECRET_PARAM = /pass|pwd|secret|token|key|auth|credential|signature/i;

const MASK = "***";

function decode(text: string): string {
  try {
    return decodeURIComponent(text.replace(/\+/g, " "));
  } catch {
    return text;
  }
}

/** Each `name=value` of a query string (without its "?"), as written. */
function queryPairs(query: string): Array<{ name: string; value: string | undefined }> {
  if (query === "") return [];
  return query.split("&").map((pair) => {
    const eq = pair.indexOf("=");
    return eq === -1
      ? { name: pair, value: undefined }
      : { name: pair.slice(0, eq), value: pair.slice(eq + 1) };
  });
}

function isSecretParam(name: string): boolean {
  return SECRET_PARAM.test(decode(name));
}

/**
 * The URL as it may be shown: the user-info password and every secret query value replaced by
 * `***`, everything else as written. A URL that does not parse is not shown at all.
 */
export function redactUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return `${/^[a-z][a-z0-9+.-]*:/i.exec(url)?.[0] ?? "url:"}//(unparsable URL)`;
  }
  if (parsed.password) parsed.password = MASK;
  if (parsed.search.length > 1) {
    const redacted = queryPairs(parsed.search.slice(1))
      .map(({ name, value }) =>
        value !== undefined && isSecretParam(name)
          ? `${name}=${MASK}`
          : name + (value === undefined ? "" : `=${value}`),
      )
      .join("&");
    parsed.search = `?${redacted}`;
  }
  return parsed.toString();
}

/** The secret values a URL carries, as written and decoded (to scrub from any text). */
export function urlSecrets(url: string | undefined): string[] {
  if (!url) return [];
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return [];
  }
  const found: string[] = [];
  if (parsed.password) found.push(parsed.password, decode(parsed.password));
  for (const { name, value } of queryPairs(parsed.search.slice(1)))
    if (value && isSecretParam(name)) found.push(value, decode(value));
  return [...new Set(found)];
}
