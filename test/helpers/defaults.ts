import { type Config, normalizeConfig } from "../../src/config/config.js";
import { fileSchema } from "../../src/config/schema.js";

/** The built-in defaults, as `serve` would run with an empty doproxy.toml. */
export function defaultConfig(): Config {
  return normalizeConfig(fileSchema.parse({}), undefined);
}
