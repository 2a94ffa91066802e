import { loadConfig, resolveConfigPath } from "../config/load.js";
import { formatHostPort } from "../util/address.js";
import type { CommonOptions } from "./context.js";

/** `doproxy config check`: validates the configuration without starting anything. */
export function configCheck(options: CommonOptions): void {
  const file = resolveConfigPath(options.config);
  const config = loadConfig(file);
  const lines = [
    `${file ?? "(built-in defaults)"}: ok`,
    `  proxy      ${formatHostPort(config.proxy.listen)} (${config.proxy.strategy}${config.proxy.tls ? ", TLS" : ""})`,
    `  inventory  ${config.inventory.path}`,
    `  admin      ${formatHostPort(config.admin.listen)}${config.admin.token ? " (token set)" : ""}`,
    `  autoscale  ${config.autoscale.enabled ? `on, ${config.autoscale.min}..${config.autoscale.max} droplets${config.autoscale.dryRun ? " (dry run)" : ""}` : "off"}`,
  ];
  process.stdout.write(`${lines.join("\n")}\n`);
}
