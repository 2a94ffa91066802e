/**
 * Finds the line of a key in TOML source text, so that validation errors can name it.
 * smol-toml reports lines for syntax errors only; schema errors come with a key path such as
 * ["proxy", "timeout"] or ["autoscale", "schedule", 1, "min"], which this maps back to a line.
 */
export function locateKey(source: string, keyPath: ReadonlyArray<string | number>): number | undefined {
  const lines = source.split(/\r?\n/);
  const [section, ...rest] = keyPath;
  if (section === undefined) return undefined;
  let wantedTable = String(section);
  let arrayIndex: number | undefined;
  let key = typeof rest[0] === "string" ? rest[0] : undefined;
  // A path into an array of tables ([[autoscale.schedule]]) or an inline array value.
  if (typeof rest[0] === "string" && typeof rest[1] === "number") {
    wantedTable = `${section}.${rest[0]}`;
    arrayIndex = rest[1];
    key = typeof rest[2] === "string" ? rest[2] : undefined;
  }

  let currentTable = "";
  let seenArrayEntries = -1;
  let headerLine: number | undefined;
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] as string).trim();
    const header = /^\[\[?\s*([A-Za-z0-9_.\-"]+)\s*\]\]?/.exec(line);
    if (header) {
      currentTable = (header[1] as string).replace(/"/g, "");
      if (currentTable === wantedTable) {
        if (line.startsWith("[[")) seenArrayEntries++;
        if (arrayIndex === undefined || seenArrayEntries === arrayIndex) headerLine ??= i + 1;
      }
      continue;
    }
    const inWantedTable =
      currentTable === wantedTable && (arrayIndex === undefined || seenArrayEntries === arrayIndex);
    if (inWantedTable && key !== undefined && new RegExp(`^"?${escapeRegExp(key)}"?\\s*=`).test(line)) {
      return i + 1;
    }
    // A key written in the array itself (key = [...]) when the path points inside an inline array.
    if (
      arrayIndex !== undefined &&
      currentTable === String(section) &&
      new RegExp(`^"?${escapeRegExp(String(rest[0]))}"?\\s*=`).test(line)
    ) {
      return i + 1;
    }
  }
  return headerLine;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
