import { type Stats, unwatchFile, watchFile } from "node:fs";
import type { DoproxyError } from "../errors.js";
import { type Config, loadConfig } from "./load.js";

export interface ConfigWatcher {
  /** The configuration in force: the last one that loaded without error. */
  current(): Config;
  /** The error of the last reload attempt, if it failed. */
  lastError(): string | undefined;
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
  const listener = (now: Stats, before: Stats): void => {
    if (now.mtimeMs === before.mtimeMs && now.size === before.size && now.ino === before.ino) return;
    if (now.nlink === 0 && now.size === 0) return; // removed for a moment during a rename-save
    try {
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
  if (file) watchFile(file, { interval: intervalMs, persistent: false }, listener);
  return {
    current: () => current,
    lastError: () => lastError,
    close: () => {
      if (file) unwatchFile(file, listener);
    },
  };
}
