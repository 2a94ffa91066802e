import { type Stats, statSync, unwatchFile, watchFile } from "node:fs";
import { ConfigError, type DoproxyError } from "../errors.js";
import { type Config, loadConfig } from "./load.js";

/** Quiet time after the last change before the file is read. */
const SETTLE_MS = 100;

export interface ConfigWatcher {
  /** The configuration in force: the last one that loaded without error. */
  current(): Config;
  /** The error of the last reload attempt, if it failed. */
  lastError(): string | undefined;
  /** Reload now, whether or not the file changed (SIGHUP: `systemctl reload`). */
  reload(): void;
  close(): void;
}

/**
 * Hot reload: polls the file's metadata (robust against editors that replace the file by
 * renaming) and reloads on change. A broken edit is reported through `onError` and the last
 * good configuration stays in force.
 */
export function watchConfig(
  initial: Config,
  onChange: (next: Config, previous: Config) => void,
  onError: (error: DoproxyError | Error) => void,
  intervalMs = 200,
): ConfigWatcher {
  let current = initial;
  let lastError: string | undefined;
  const file = initial.file;
  const reload = (): void => {
    try {
      if (file && statSync(file).size === 0) {
        // An editor or `>` redirection truncates before it writes; an empty file is never applied
        // (it would mean "every default", listen address included).
        throw new ConfigError(
          `${file}: the configuration file is empty; keeping the last good configuration`,
        );
      }
      const next = loadConfig(file);
      const previous = current;
      current = next;
      lastError = undefined;
      onChange(next, previous);
    } catch (error) {
      lastError = (error as Error).message;
      onError(error as Error);
    }
  };
  let settle: NodeJS.Timeout | undefined;
  const listener = (now: Stats, before: Stats): void => {
    if (now.mtimeMs === before.mtimeMs && now.size === before.size && now.ino === before.ino) return;
    if (now.nlink === 0) return; // removed for a moment during a rename-save
    // Read once the file has stopped changing, not halfway through a write.
    clearTimeout(settle);
    settle = setTimeout(reload, SETTLE_MS);
  };
  if (file) watchFile(file, { interval: intervalMs, persistent: false }, listener);
  return {
    current: () => current,
    lastError: () => lastError,
    reload: () => {
      clearTimeout(settle);
      reload();
    },
    close: () => {
      clearTimeout(settle);
      if (file) unwatchFile(file, listener);
    },
  };
}
