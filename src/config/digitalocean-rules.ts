/**
 * Value rules that DigitalOcean's API (or an HTTP request line) enforces, checked when the
 * configuration is read so that `config check` refuses what the API or `serve` would refuse later.
 */

/** DigitalOcean tag names: letters, digits, ':', '-' and '_', 1 to 255 characters. */
export function isValidTag(tag: string): boolean {
  return /^[A-Za-z0-9_:-]{1,255}$/.test(tag);
}

/**
 * Droplet names are host names (letters, digits, '.' and '-', starting with a letter or digit);
 * doproxy appends 8 hex digits, so the prefix leaves room under the API's 255 characters.
 * An empty prefix is allowed: the name is then the hex alone.
 */
export function isValidDropletNamePrefix(prefix: string): boolean {
  return prefix === "" || /^[A-Za-z0-9][A-Za-z0-9.-]{0,199}$/.test(prefix);
}

/** A health check path goes into a request line: it must start with "/" and hold no space or control character. */
export function isValidHealthPath(path: string): boolean {
  return /^\/[\x21-\x7e]*$/.test(path);
}
