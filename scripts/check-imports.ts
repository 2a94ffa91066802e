/**
 * The import rules of docs/architecture.md, checked on every CI run: each layer of src/ imports
 * only the layers below it, each chosen library is imported only by the layer that owns it, and no
 * two files import each other (directly or around a cycle). Inside src/proxy/ the same holds for
 * its rooms (ROOMS below). Prints every breach and exits 1.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const SRC = fileURLToPath(new URL("../src/", import.meta.url));
/** Files at the top of src/ that every layer may use. */
const BASE = new Set(["errors", "log", "version"]);

/** Which layers each layer may import (besides itself and BASE). */
const ALLOWED: Record<string, string[]> = {
  util: [],
  model: ["util"],
  config: ["model", "util"],
  inventory: ["model", "util"],
  proxy: ["inventory", "config", "model", "util"],
  cloud: ["inventory", "config", "model", "util"],
  sim: ["model", "util"],
  autoscale: ["cloud", "proxy", "inventory", "config", "model", "util"],
  admin: ["autoscale", "cloud", "proxy", "inventory", "config", "model", "util"],
  cli: ["admin", "autoscale", "cloud", "proxy", "sim", "inventory", "config", "model", "util"],
};

/**
 * The rooms of src/proxy/ and which other rooms each may import (docs/architecture.md). A file
 * directly in src/proxy/ is its own room, named after the file: server.ts orchestrates the
 * request path, service.ts starts the whole data plane.
 */
const ROOMS: Record<string, string[]> = {
  http: [],
  observe: [],
  balance: [],
  policy: ["http"],
  forward: ["http", "balance"],
  server: ["http", "policy", "forward", "balance", "observe"],
  workers: ["server", "http", "balance", "observe"],
  service: ["server", "workers", "http", "policy", "forward", "balance", "observe"],
};

/** A library and the only layer that may import it. */
const OWNERS: Record<string, string> = {
  "digitalocean-js": "cloud",
  "smol-toml": "config",
  "better-sqlite3": "inventory",
  pg: "inventory",
  undici: "proxy",
  "http-proxy-3": "proxy",
};

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    return statSync(full).isDirectory() ? files(full) : name.endsWith(".ts") ? [full] : [];
  });
}

/** "proxy" for src/proxy/x.ts and src/proxy/x/y.ts, "errors" for src/errors.ts. */
function layerOf(file: string): string {
  const relative = path.relative(SRC, file).split(path.sep);
  return relative.length === 1 ? (relative[0] as string).replace(/\.ts$/, "") : (relative[0] as string);
}

/** "balance" for src/proxy/balance/x.ts, "server" for src/proxy/server.ts. */
function roomOf(file: string): string {
  const relative = path.relative(path.join(SRC, "proxy"), file).split(path.sep);
  return (relative[0] as string).replace(/\.ts$/, "");
}

const breaches: string[] = [];
const graph = new Map<string, string[]>();
for (const file of files(SRC)) {
  const source = readFileSync(file, "utf8");
  const layer = layerOf(file);
  const edges: string[] = [];
  for (const match of source.matchAll(/^(?:import|export)\s[^;]*?from\s+"([^"]+)"/gms)) {
    const spec = match[1] as string;
    const name = path.relative(SRC, file);
    if (!spec.startsWith(".")) {
      const pkg = spec.startsWith("@")
        ? spec.split("/").slice(0, 2).join("/")
        : (spec.split("/")[0] as string);
      const owner = OWNERS[pkg];
      if (owner && owner !== layer)
        breaches.push(`${name}: imports ${pkg}, which only src/${owner}/ may import`);
      continue;
    }
    const target = path.resolve(path.dirname(file), spec).replace(/\.js$/, ".ts");
    edges.push(target);
    const targetLayer = layerOf(target);
    if (layer === "proxy" && targetLayer === "proxy") {
      const room = roomOf(file);
      const targetRoom = roomOf(target);
      if (targetRoom !== room && !(ROOMS[room] ?? []).includes(targetRoom))
        breaches.push(
          `${name}: imports ${path.relative(SRC, target)} (proxy/${room} may not import proxy/${targetRoom})`,
        );
      continue;
    }
    if (targetLayer === layer || BASE.has(targetLayer) || BASE.has(layer)) continue;
    if (!(ALLOWED[layer] ?? []).includes(targetLayer))
      breaches.push(
        `${name}: imports ${path.relative(SRC, target)} (${layer} may not import ${targetLayer})`,
      );
  }
  graph.set(file, edges);
}

// Cycles between files: depth-first search with colours.
const colour = new Map<string, "grey" | "black">();
const stack: string[] = [];
function visit(file: string): void {
  colour.set(file, "grey");
  stack.push(file);
  for (const next of graph.get(file) ?? []) {
    if (colour.get(next) === "grey") {
      const cycle = stack.slice(stack.indexOf(next)).map((f) => path.relative(SRC, f));
      breaches.push(`import cycle: ${[...cycle, path.relative(SRC, next)].join(" -> ")}`);
    } else if (!colour.has(next) && graph.has(next)) visit(next);
  }
  stack.pop();
  colour.set(file, "black");
}
for (const file of graph.keys()) if (!colour.has(file)) visit(file);

if (breaches.length > 0) {
  console.error(`import rules (docs/architecture.md) broken:\n  ${breaches.join("\n  ")}`);
  process.exit(1);
}
console.log(`import rules: ${graph.size} files, no breach`);
