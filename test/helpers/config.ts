import { stringify } from "smol-toml";
import type { Config } from "../../src/config/config.js";
import { parseConfigText } from "../../src/config/load.js";
import type { configKeys } from "../../src/config/schema.js";

type Keys = ReturnType<typeof configKeys>;
type TomlValue = string | number | boolean | TomlValue[] | { [key: string]: TomlValue };

/** Sections and keys of doproxy.toml, by their TOML names: a key the schema does not know is a type error. */
export type ConfigOverrides = { [S in keyof Keys]?: { [K in keyof Keys[S]]?: TomlValue } };

/** The TOML text of these sections and keys (everything else stays at its default). */
export function toml(overrides: ConfigOverrides): string {
  return `${stringify(overrides)}\n`;
}

/** An `[autoscale]` section as the e2e tests run it: on, and evaluating every second. */
export function autoscaleToml(overrides: ConfigOverrides["autoscale"] = {}): string {
  return toml({ autoscale: { enabled: true, evaluate: "* * * * * *", ...overrides } });
}

/** A validated configuration: the defaults with these keys set, as `serve` would load it. */
export function testConfig(overrides: ConfigOverrides = {}, env: NodeJS.ProcessEnv = {}): Config {
  return parseConfigText(toml(overrides), undefined, env);
}
