import { existsSync, statSync } from "node:fs";
import { DigitalOceanProvider, MAX_USER_DATA_BYTES } from "../cloud/digitalocean.js";
import { ownershipTag } from "../cloud/provider.js";
import type { Config } from "../config/load.js";
import { loadConfig, resolveConfigPath } from "../config/load.js";
import { loadTlsFiles } from "../config/tls-files.js";
import { ConfigError, RefusedError } from "../errors.js";
import { openInventory } from "../inventory/open.js";
import { formatHostPort } from "../util/address.js";
import { redactUrl } from "../util/url-secrets.js";
import type { CommonOptions } from "./context.js";

export interface ConfigCheckOptions extends CommonOptions {
  online?: boolean;
}

/** Choices that are valid but look wrong for where doproxy usually runs. */
export function configWarnings(config: Config): string[] {
  const warnings: string[] = [];
  const dig = config.digitalocean;
  if (dig.usePrivateIp && !dig.vpcUuid)
    warnings.push(
      "[digitalocean] use-private-ip = true: droplets are reached on their VPC address, so doproxy must run inside the same VPC (set vpc-uuid to pin it); outside it they never pass health checks",
    );
  if (!dig.usePrivateIp && dig.vpcUuid)
    warnings.push(
      "[digitalocean] vpc-uuid is set but use-private-ip = false: traffic to the droplets goes over their public addresses",
    );
  return warnings;
}

/** `doproxy config check [--online]`: validates the configuration without starting anything. */
export async function configCheck(options: ConfigCheckOptions): Promise<void> {
  const file = resolveConfigPath(options.config);
  const config = loadConfig(file);
  // The certificate and key exactly as serve loads them.
  if (config.proxy.tls) loadTlsFiles(config.proxy.tls);
  const { userDataFile } = config.digitalocean;
  if (userDataFile) {
    if (!existsSync(userDataFile))
      throw new ConfigError(`[digitalocean] user-data-file ${userDataFile} does not exist`);
    const size = statSync(userDataFile).size;
    if (size > MAX_USER_DATA_BYTES)
      throw new ConfigError(
        `[digitalocean] user-data-file ${userDataFile} is ${size} bytes; DigitalOcean accepts at most 64 KiB`,
      );
  }
  // The pool identity lives in the inventory: shown when the inventory exists (never created here).
  // PostgreSQL is reached only with --online (a check stays offline otherwise).
  let pool = config.inventory.url ? "(in PostgreSQL; --online reads it)" : "(created at the first start)";
  if (config.inventory.url ? options.online : existsSync(config.inventory.path)) {
    const inventory = await openInventory(config.inventory);
    try {
      const id = (await inventory.pool.identity()).poolId;
      pool = `${id} (ownership tag ${ownershipTag(id)})`;
    } finally {
      await inventory.close();
    }
  }
  const lines = [
    `${file ?? "(built-in defaults)"}: ok`,
    `  proxy      ${formatHostPort(config.proxy.listen)} (${config.proxy.strategy}${config.proxy.tls ? ", TLS" : ""})`,
    `  inventory  ${config.inventory.url ? `${redactUrl(config.inventory.url)} (PostgreSQL)` : config.inventory.path}`,
    `  pool       ${pool}`,
    `  admin      ${formatHostPort(config.admin.listen)}${config.admin.token ? " (token set)" : ""}`,
    `  autoscale  ${config.autoscale.enabled ? `on, ${config.autoscale.min}..${config.autoscale.max} droplets${config.autoscale.dryRun ? " (dry run)" : ""}` : "off"}`,
    ...configWarnings(config).map((w) => `warning: ${w}`),
  ];
  process.stdout.write(`${lines.join("\n")}\n`);
  if (!options.online) return;
  // --online: the token works, can read droplets, and the region, size and image exist.
  const provider = new DigitalOceanProvider(config.digitalocean, ownershipTag("check"));
  await provider.verify();
  process.stdout.write(`online: ${provider.description}: token accepted (account:read)\n`);
  await provider.listTagged(config.digitalocean.tags[0] as string);
  process.stdout.write("online: droplets can be listed (droplet:read)\n");
  const problems = await provider.checkCatalogue();
  if (problems.length > 0)
    throw new RefusedError(problems.join("; "), "pick values from the control panel's create page");
  process.stdout.write(
    `online: ${config.digitalocean.region}, ${config.digitalocean.size} and ${config.digitalocean.image} are available\n`,
  );
}
