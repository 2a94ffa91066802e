import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { parse as parseToml, TomlError } from "smol-toml";
import type { z } from "zod";
import { ConfigError } from "../errors.js";
import { registerSecret } from "../util/secrets.js";
import { urlSecrets } from "../util/url-secrets.js";
import type { Config } from "./config.js";
import { locateKey } from "./locate.js";
import { configSchema } from "./schema.js";

export type { Config } from "./config.js";

/**
 * Which configuration file a command uses: --config, else ./doproxy.toml when it exists, else
 * $DOPROXY_CONFIG (DESIGN.md's command-line contract). Undefined means "built-in defaults".
 */
export function resolveConfigPath(flag: string | undefined, cwd = process.cwd()): string | undefined {
  if (flag) return path.resolve(cwd, flag);
  const local = path.resolve(cwd, "doproxy.toml");
  if (existsSync(local)) return local;
  if (process.env.DOPROXY_CONFIG) return path.resolve(cwd, process.env.DOPROXY_CONFIG);
  return undefined;
}

/** Reads, interpolates and validates a configuration file; throws ConfigError naming file, line and key. */
export function loadConfig(file: string | undefined, env: NodeJS.ProcessEnv = process.env): Config {
  if (file === undefined) return parseConfigText("", undefined, env);
  let source: string;
  try {
    source = readFileSync(file, "utf8");
  } catch (error) {
    const reason =
      (error as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (error as Error).message;
    throw new ConfigError(
      `${file}: cannot read configuration: ${reason}`,
      "pass --config FILE or create doproxy.toml",
    );
  }
  return parseConfigText(source, file, env);
}

export function parseConfigText(
  source: string,
  file: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): Config {
  const label = file ? path.relative(process.cwd(), file) || file : "(defaults)";
  let parsed: Record<string, unknown>;
  try {
    parsed = parseToml(source) as Record<string, unknown>;
  } catch (error) {
    if (error instanceof TomlError) {
      const firstLine = error.message.split("\n")[0] ?? error.message;
      throw new ConfigError(
        `${label}:${error.line}:${error.column}: invalid TOML: ${firstLine.replace(/^Invalid TOML document: /, "")}`,
      );
    }
    throw error;
  }

  const tokenSource = describeTokenSource(parsed, label);
  const interpolated = interpolate(parsed, env) as Record<string, unknown>;
  const result = configSchema(file ? path.dirname(file) : process.cwd()).safeParse(interpolated);
  if (!result.success)
    throw new ConfigError(describeIssues(result.error.issues, source, label, interpolated));
  const config: Config = { file, ...result.data, digitalocean: { ...result.data.digitalocean, tokenSource } };
  registerSecret(config.digitalocean.token);
  registerSecret(config.admin.token);
  for (const secret of urlSecrets(config.inventory.url)) registerSecret(secret);
  return config;
}

/** Replaces ${NAME} in every string value by the environment variable NAME (unset: empty string). */
function interpolate(value: unknown, env: NodeJS.ProcessEnv): unknown {
  if (typeof value === "string") {
    return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, name: string) => env[name] ?? "");
  }
  if (Array.isArray(value)) return value.map((item) => interpolate(item, env));
  if (value && typeof value === "object" && !(value instanceof Date)) {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, interpolate(item, env)]));
  }
  return value;
}

/** Says where the API token comes from, for error messages ("environment variable DIGITALOCEAN_TOKEN"). */
function describeTokenSource(parsed: Record<string, unknown>, label: string): string {
  const section = parsed.digitalocean as Record<string, unknown> | undefined;
  const raw = section?.token;
  if (typeof raw !== "string") return `[digitalocean] token in ${label} (not set)`;
  const variable = /^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$/.exec(raw);
  if (variable) return `environment variable ${variable[1]} (from [digitalocean] token in ${label})`;
  return `[digitalocean] token in ${label}`;
}

function describeIssues(issues: z.core.$ZodIssue[], source: string, label: string, data: unknown): string {
  return issues
    .map((issue) => {
      if (issue.code === "unrecognized_keys") {
        const keyPath = [...issue.path.map(String), issue.keys[0] as string];
        const line = locateKey(source, keyPath.length === 1 ? [issue.keys[0] as string] : keyPath);
        const where = issue.path.length ? `[${issue.path.join(".")}] ` : "";
        return `${label}${line ? `:${line}` : ""}: ${where}unknown key "${issue.keys.join('", "')}"`;
      }
      const keyPath = issue.path.map((key) => (typeof key === "number" ? key : String(key)));
      const line = locateKey(source, keyPath);
      // Keys that hold secrets are named, never shown (an invalid URL may carry its password).
      const secret = ["token", "url"].includes(String(keyPath.at(-1)));
      const value = secret ? undefined : valueAt(data, keyPath);
      const shown = value === undefined ? "" : ` = ${JSON.stringify(value)}`;
      return `${label}${line ? `:${line}` : ""}: ${describePath(keyPath)}${shown}: ${issue.message}`;
    })
    .join("\n");
}

function describePath(keyPath: Array<string | number>): string {
  const [section, ...rest] = keyPath;
  if (section === undefined) return "(file)";
  return rest.length ? `[${section}] ${rest.join(".")}` : `[${section}]`;
}

/** The password of a PostgreSQL URL, so that logs and errors can be scrubbed of it. */
function valueAt(data: unknown, keyPath: Array<string | number>): unknown {
  let current: unknown = data;
  for (const key of keyPath) {
    if (current === null || typeof current !== "object") return undefined;
    current = (current as Record<string | number, unknown>)[key];
  }
  return current;
}
