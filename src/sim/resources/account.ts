import { createHash } from "node:crypto";
import { ApiFailure } from "../answer.js";
import type { Resource } from "../context.js";

interface SshKey {
  id: number;
  fingerprint: string;
  public_key: string;
  name: string;
}

/** The account (its droplet limit) and its SSH keys. */
export const account: Resource = (sim) => {
  const sshKeys = new Map<number, SshKey>();
  return ({ method, path, url, body }) => {
    if (path === "/v2/account" && method === "GET") {
      return {
        status: 200,
        payload: {
          account: {
            droplet_limit: sim.options.dropletLimit,
            floating_ip_limit: 3,
            email: "sim@doproxy.invalid",
            name: "doproxy simulator",
            uuid: "b6fr89dbf6d9156cace5f3c78dc9851d957381ef",
            email_verified: true,
            status: "active",
            status_message: "",
            // A widely used DigitalOcean client crashes on an account answer without a team.
            team: { uuid: "5df3e3004a17e242b7c20ca6c9fc25b701a47ece", name: "doproxy simulator" },
          },
        },
      };
    }
    if (path === "/v2/account/keys" && method === "GET")
      return sim.list(url, "ssh_keys", [...sshKeys.values()]);
    if (path === "/v2/account/keys" && method === "POST") {
      const request = body as { name?: unknown; public_key?: unknown } | undefined;
      if (typeof request?.name !== "string" || typeof request.public_key !== "string")
        throw new ApiFailure(422, "name and public_key are required.");
      const key: SshKey = {
        id: 289_794 + sshKeys.size,
        fingerprint: createHash("md5")
          .update(request.public_key)
          .digest("hex")
          .replace(/(..)(?!$)/g, "$1:"),
        public_key: request.public_key,
        name: request.name,
      };
      sshKeys.set(key.id, key);
      return { status: 201, payload: { ssh_key: key } };
    }
    return undefined;
  };
};
