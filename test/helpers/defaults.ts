import type { Config } from "../../src/config/config.js";
import { testConfig } from "./config.js";

/** The built-in defaults, as `serve` would run with an empty doproxy.toml. */
export function defaultConfig(): Config {
  return testConfig();
}
