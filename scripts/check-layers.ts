/**
 * Checks the import rules README.md's "How it works" states: which layer of src/ may import
 * which, and no import cycles between files. Run by .ci/run (`npm run check:layers`); exits 1 and
 * names each offending import when a rule is broken.
 */
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const SRC = fileURLToPath(new URL("../src/", import.meta.url));

/** For each layer (a folder of src/, or "." for its top-level files), the layers it must not import. */
const FORBIDDEN: Record<string, readonly string[]> = {
  // errors.ts, log.ts, version.ts: used by every layer.
  ".": ["config", "inventory", "proxy", "cloud", "autoscale", "admin", "sim", "cli"],
  model: ["util", "config", "inventory", "proxy", "cloud", "autoscale", "admin", "sim", "cli"],
  util: ["config", "inventory", "proxy", "cloud", "autoscale", "admin", "sim", "cli"],
  config: ["inventory", "proxy", "cloud", "autoscale", "admin", "sim", "cli"],
  inventory: ["proxy", "cloud", "autoscale", "admin", "sim", "cli"],
  proxy: ["autoscale", "admin", "sim", "cli"],
  // cloud/lifecycle.ts gates a droplet on the proxy's own health probe (proxy/health.ts).
  cloud: ["autoscale", "admin", "sim", "cli"],
  autoscale: ["admin", "sim", "cli"],
  admin: ["sim", "cli"],
  sim: ["inventory", "proxy", "autoscale", "admin", "cli"],
  cli: [],
};

const IMPORT = /^\s*(?:import|export)\s[^;]*?from\s+"(\.{1,2}\/[^"]+)"/gm;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(full);
    return entry.name.endsWith(".ts") ? [full] : [];
  });
}

function layerOf(file: string): string {
  const rel = path.relative(SRC, file);
  return rel.includes(path.sep) ? (rel.split(path.sep)[0] as string) : ".";
}

/** The src/ files a file imports, resolved from the ".js" specifiers TypeScript's NodeNext uses. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, "utf8");
  return [...text.matchAll(IMPORT)].map((m) =>
    path.resolve(path.dirname(file), (m[1] as string).replace(/\.js$/, ".ts")),
  );
}

export function check(): string[] {
  const problems: string[] = [];
  const graph = new Map<string, string[]>();
  for (const file of sourceFiles(SRC)) graph.set(file, importsOf(file));

  for (const [file, targets] of graph) {
    const from = layerOf(file);
    const forbidden = FORBIDDEN[from];
    if (!forbidden) {
      problems.push(`${path.relative(SRC, file)}: layer "${from}" has no rule in scripts/check-layers.ts`);
      continue;
    }
    for (const target of targets) {
      const to = layerOf(target);
      if (to !== from && forbidden.includes(to)) {
        problems.push(
          `src/${path.relative(SRC, file)} imports src/${path.relative(SRC, target)}: ${from} must not import ${to}`,
        );
      }
    }
  }

  // Cycles between files: depth-first search, reporting each cycle once by its first back edge.
  const state = new Map<string, "open" | "done">();
  const stack: string[] = [];
  const visit = (file: string): void => {
    state.set(file, "open");
    stack.push(file);
    for (const target of graph.get(file) ?? []) {
      if (!graph.has(target)) continue;
      const seen = state.get(target);
      if (seen === "open") {
        const cycle = [...stack.slice(stack.indexOf(target)), target].map(
          (f) => `src/${path.relative(SRC, f)}`,
        );
        problems.push(`import cycle: ${cycle.join(" -> ")}`);
      } else if (seen === undefined) {
        visit(target);
      }
    }
    stack.pop();
    state.set(file, "done");
  };
  for (const file of [...graph.keys()].sort()) if (!state.has(file)) visit(file);
  return problems;
}

const problems = check();
for (const problem of problems) process.stderr.write(`${problem}\n`);
if (problems.length > 0) {
  process.stderr.write(`${problems.length} import rule(s) broken; see README.md, "How it works"\n`);
  process.exit(1);
}
process.stdout.write("import rules hold\n");
