#!/usr/bin/env node
import { readFileSync } from "node:fs";
import { Command, CommanderError, Option } from "commander";
import { configCheck } from "./config-check.js";
import { addStatic, list, remove } from "./droplets.js";
import { events } from "./events.js";
import { action } from "./run.js";
import { serve } from "./serve.js";

const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as {
  version: string;
};

/** Every command takes --config; the default is ./doproxy.toml, then $DOPROXY_CONFIG. */
function withConfig(command: Command): Command {
  return command.addOption(
    new Option("-c, --config <file>", "configuration file (default ./doproxy.toml, then $DOPROXY_CONFIG)"),
  );
}

const program = new Command()
  .name("doproxy")
  .description("Load-balancing reverse proxy that owns and autoscales its pool of DigitalOcean droplets")
  .version(pkg.version)
  .showHelpAfterError()
  .exitOverride();

withConfig(
  program.command("serve").description("proxy traffic across healthy backends, health-check and record them"),
).action(action((options) => serve(options)));

const droplets = program.command("droplets").description("manage the backend pool by hand");
withConfig(
  droplets
    .command("add")
    .description("create droplets, adopt one (--id) or register a server that is not a droplet (--address)")
    .option("--address <host:port>", "register a server that is not a droplet")
    .option("--name <name>", "a name to show for an --address backend")
    .option("--no-wait", "return once registered instead of waiting for it to join"),
).action(action((options) => addStatic(options)));
withConfig(
  droplets
    .command("list")
    .description("backends with state, health, in-flight, p50/p95 round-trip time, requests/s, age")
    .option("--json", "machine-readable output")
    .option("--all", "include removed backends"),
).action(action((options) => list(options)));
withConfig(
  droplets
    .command("remove")
    .description("drain a backend, then remove it (destroying its droplet unless --keep-droplet)")
    .argument("<id>", "backend id from: doproxy droplets list")
    .option("--keep-droplet", "release the droplet instead of destroying it")
    .option("--force", "remove even the last active backend, or below [autoscale] min"),
).action(action((id, options) => remove(id, options)));

withConfig(
  program
    .command("events")
    .description("scaling decisions and backend transitions")
    .option("--since <duration>", "how far back", "1h")
    .option("--json", "machine-readable output"),
).action(action((options) => events(options)));

const config = program.command("config").description("configuration tools");
withConfig(
  config.command("check").description("validate the configuration without starting anything"),
).action(action((options) => configCheck(options)));

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) {
    // --help and --version exit 0; every other parse failure is bad usage.
    process.exit(error.exitCode === 0 ? 0 : 2);
  }
  throw error;
}
