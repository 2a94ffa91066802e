#!/usr/bin/env node
import { Command, CommanderError, Option } from "commander";
import { ERROR_CODES } from "../errors.js";
import { VERSION } from "../version.js";
import { resumeAutoscale } from "./autoscale.js";
import { configCheck } from "./config-check.js";
import { addStatic, list, parseWeight, remove, set } from "./droplets.js";
import { addDroplets, sync } from "./droplets-cloud.js";
import { events } from "./events.js";
import { inventoryBackup } from "./inventory-backup.js";
import { poolRecover } from "./pool-recover.js";
import { replay } from "./replay.js";
import { action } from "./run.js";
import { serve } from "./serve.js";
import { sim } from "./sim.js";

/** Every command takes --config; the default is ./doproxy.toml, then $DOPROXY_CONFIG. */
function withConfig(command: Command): Command {
  return command.addOption(
    new Option("-c, --config <file>", "configuration file (default ./doproxy.toml, then $DOPROXY_CONFIG)"),
  );
}

const program = new Command()
  .name("doproxy")
  .description("Load-balancing reverse proxy that owns and autoscales its pool of DigitalOcean droplets")
  .version(VERSION)
  .showHelpAfterError()
  // A parse failure is bad usage: its line carries the catalogue's code like every other error.
  .configureOutput({
    outputError: (text, write) => write(`doproxy: [DOPROXY_USAGE] ${text.replace(/^error: /, "")}`),
  })
  .exitOverride();

withConfig(
  program.command("serve").description("proxy traffic across healthy backends, health-check and record them"),
).action(action((options) => serve(options)));

const droplets = program.command("droplets").description("manage the backend pool by hand");
withConfig(
  droplets
    .command("add")
    .description("create droplets, adopt one (--id) or register a server that is not a droplet (--address)")
    .option("--count <n>", "how many droplets to create", "1")
    .option("--id <droplet-id-or-name>", "adopt an existing droplet, by its id or its name")
    .option("--autoscale", "with --id: let the autoscaler drain and destroy the adopted droplet")
    .option("--force", "create past [autoscale] max or max-hourly-cost on purpose")
    .option("--address <host:port>", "register a server that is not a droplet")
    .option("--name <name>", "a name to show for an --address backend")
    .option(
      "--weight <n>",
      "share of traffic relative to other backends, 1 to 1000 (default 1, or [digitalocean] weight)",
    )
    .option("--no-wait", "return once registered instead of waiting for it to join"),
).action(
  action((options) => {
    const withWeight = { ...options, weight: parseWeight(options.weight) };
    return options.address !== undefined ? addStatic(withWeight) : addDroplets(withWeight);
  }),
);
withConfig(
  droplets
    .command("set")
    .description("change a backend's settings while it serves (applies in a running serve within a second)")
    .argument("<id>", "inventory id, droplet id or droplet name")
    .option("--weight <n>", "share of traffic relative to other backends, 1 to 1000"),
).action(action((id, options) => set(id, options)));
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
    .argument("<id>", "inventory id, droplet id or droplet name")
    .option("--keep-droplet", "release the droplet instead of destroying it")
    .option("--force", "remove even the last active backend, or below [autoscale] min"),
).action(action((id, options) => remove(id, options)));

withConfig(
  droplets
    .command("sync")
    .description("reconcile the inventory with the droplets that carry the pool tag on DigitalOcean")
    .option("--apply", "make the changes instead of only reporting them")
    .option(
      "--adopt-conflicts",
      "with --apply: also adopt droplets with this pool's tag whose names this inventory never generated (after restoring an older backup; never while another inventory uses this identity)",
    )
    .option("--json", "machine-readable output"),
).action(action((options) => sync(options)));

withConfig(
  program
    .command("events")
    .description("scaling decisions and backend transitions")
    .option("--since <duration>", "how far back", "1h")
    .option("--json", "machine-readable output"),
).action(action((options) => events(options)));

withConfig(
  program
    .command("sim")
    .description("local DigitalOcean API simulator whose droplets are real HTTP servers on 127.0.1.N")
    .option("--listen <host:port>", "where the API listens", "127.0.0.1:4010")
    .option("--token <token>", "require this bearer token (default: accept any)")
    .option("--boot-time <duration>", "how long a new droplet takes to become active", "2s")
    .option("--capacity <n>", "requests a simulated droplet serves at once (the rest queue)", "8")
    .option("--service-time <duration>", "time a simulated droplet takes per request", "50ms")
    .option("--backend-port <port>", "port the simulated droplets serve HTTP on", "8080")
    .option("--health-path <path>", "health path the droplets answer at once", "/health")
    .option("--burst <n>", "requests allowed per minute before 429", "250")
    .option("--hourly <n>", "requests allowed per hour before 429", "5000")
    .option("--droplet-limit <n>", "droplets the account may have", "500")
    .option("--fail-rate <share>", "share (0..1) of API requests answered with a 5xx", "0")
    .option("--slow <duration>", "extra delay before every API answer", "0ms")
    .option("--never-boot <n>", "the next N droplets created never become active", "0")
    .option("--list-lag <duration>", "a new droplet is missing from lists and 404 by id this long", "0ms")
    .option("--delete-lag <duration>", "a destroyed droplet is still listed this long", "0ms")
    .option("--unhealthy <n>", "the next N droplets created boot but their health path answers 503", "0")
    .option("--unhealthy-image <slug>", "droplets created from this image never pass health checks")
    .option("--create-delay <duration>", "answer a create this long after its droplets exist", "0ms")
    .option(
      "--delete-not-found-young <duration>",
      "a DELETE of a droplet younger than this answers 404 and leaves it",
      "0ms",
    )
    .option(
      "--shift-pages <n>",
      "each list page after the first starts N items later (negative: earlier)",
      "0",
    )
    .option("--realistic", "DigitalOcean-like eventual consistency: --list-lag 3s --delete-lag 15s"),
).action(action((options) => sim(options)));

withConfig(
  program
    .command("replay")
    .description(
      "what the recorded run did, and what --config's [autoscale] would have done with the same load (reads the inventory only)",
    )
    .option("--since <duration>", "how much history to replay", "24h")
    .option(
      "--slo <latency>",
      "the p95 every run (recorded, candidate, oracle) is judged against (default: the recorded run's scale-up-latency)",
    )
    .option(
      "--json",
      'machine-readable output: {"slo": {...}, "actual": {...}, "candidate": {...}, "oracle": {...}}',
    ),
).action(action((options) => replay(options)));

const autoscale = program.command("autoscale").description("the autoscaler's holds");
withConfig(
  autoscale
    .command("resume")
    .description("start replacing unhealthy droplets again after replacements-failing"),
).action(action((options) => resumeAutoscale(options)));

const inventory = program.command("inventory").description("the inventory database");
withConfig(
  inventory
    .command("backup")
    .description("a consistent copy of the SQLite inventory, safe while serve runs (SQLite's online backup)")
    .argument("<file>", "where to write the copy (refused if it exists, unless --force)")
    .option("--force", "overwrite FILE if it exists"),
).action(action((file, options) => inventoryBackup(file, options)));

const pool = program.command("pool").description("the pool's identity");
withConfig(
  pool
    .command("recover")
    .description(
      "on a new inventory: take a lost inventory's pool identity back and adopt every droplet carrying its ownership tag (doproxy-pool-<id>); reports only, unless --apply",
    )
    .option(
      "--id <pool-id>",
      "the pool's 12 hex digits: the tag doproxy-pool-<id> on any of its droplets, or `config check`/`droplets sync` on a copy of the old inventory",
    )
    .option("--dry-run", "report what would be adopted without writing anything (the default)")
    .option("--apply", "write the identity and the adopted droplets"),
).action(action((options) => poolRecover(options)));

const config = program.command("config").description("configuration tools");
withConfig(
  config
    .command("check")
    .description("validate the configuration without starting anything")
    .option("--online", "also check the token, droplet read access, region, size and image against the API"),
).action(action((options) => configCheck(options)));

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) {
    // --help and --version exit 0; every other parse failure is bad usage.
    process.exit(error.exitCode === 0 ? 0 : ERROR_CODES.DOPROXY_USAGE.exit);
  }
  throw error;
}
