import type { FileConfig } from "./schema.js";

export type { ClientKey } from "./schema.js";

/**
 * The validated configuration: the schema's output (src/config/schema.ts declares every key once)
 * plus what does not come from the file's keys.
 */
export type Config = Omit<FileConfig, "digitalocean"> & {
  /** Absolute path of the file this came from, or undefined for the built-in defaults. */
  file: string | undefined;
  digitalocean: FileConfig["digitalocean"] & {
    /** Where the token comes from, for error messages; never the token itself. */
    tokenSource: string;
  };
};

export type StickySettings = Config["proxy"]["sticky"];
export type RateLimitSettings = Config["rateLimit"];
export type CorsSettings = Config["cors"];
