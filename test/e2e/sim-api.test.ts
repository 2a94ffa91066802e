import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { ApiSpec } from "../../src/sim/spec.js";
import { type Workspace, workspace } from "../helpers/cli.js";
import { type SimHandle, startSim } from "../helpers/sim.js";
import { waitFor } from "../helpers/wait.js";

/** Every simulator answer is checked against DigitalOcean's OpenAPI document. */
describe("doproxy sim conforms to the DigitalOcean spec", () => {
  const spec = new ApiSpec();
  let ws: Workspace;
  let sim: SimHandle;

  before(async () => {
    ws = workspace("");
    sim = await startSim(ws);
  });
  after(async () => {
    await sim?.daemon.stop();
    ws?.cleanup();
  });

  async function call(method: string, path: string, specPath: string, body?: unknown, token?: string) {
    const reply = await sim.api(method, path, body, token);
    const errors = spec.validateResponse(method, specPath, reply.status, reply.body);
    assert.deepEqual(
      errors,
      [],
      `${method} ${path} -> ${reply.status} ${JSON.stringify(reply.body ?? null).slice(0, 300)}`,
    );
    for (const header of ["ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"])
      assert.match(reply.headers.get(header) ?? "", /^\d+$/, header);
    return reply;
  }

  it("creates one droplet and several, which boot into real HTTP servers", async () => {
    const one = await call("POST", "/v2/droplets", "/v2/droplets", {
      name: "web-1",
      region: "nyc3",
      size: "s-1vcpu-1gb",
      image: "ubuntu-24-04-x64",
      tags: ["doproxy"],
    });
    assert.equal(one.status, 202);
    const droplet = (one.body as { droplet: { id: number; status: string; networks: { v4: unknown[] } } })
      .droplet;
    assert.equal(droplet.status, "new");
    assert.deepEqual(droplet.networks.v4, [], "no address before it boots");
    const many = await call("POST", "/v2/droplets", "/v2/droplets", {
      names: ["web-2", "web-3"],
      region: "ams3",
      size: "s-2vcpu-2gb",
      image: "debian-12-x64",
      tags: ["doproxy"],
    });
    assert.equal((many.body as { droplets: unknown[] }).droplets.length, 2);

    const booted = await waitFor(async () => {
      const got = await call("GET", `/v2/droplets/${droplet.id}`, "/v2/droplets/{droplet_id}");
      const d = (
        got.body as {
          droplet: { status: string; networks: { v4: Array<{ ip_address: string; type: string }> } };
        }
      ).droplet;
      return d.status === "active" ? d : undefined;
    }, "the droplet to boot");
    const types = booted.networks.v4.map((n) => n.type).sort();
    assert.deepEqual(types, ["private", "public"]);
    const privateIp = booted.networks.v4.find((n) => n.type === "private")?.ip_address as string;
    assert.match(privateIp, /^127\.0\.1\.\d+$/);
    const served = await fetch(`http://${privateIp}:${sim.backendPort}/hello`);
    assert.equal(served.status, 200);
    assert.match(await served.text(), /web-1 served GET \/hello/);
    assert.equal((await fetch(`http://${privateIp}:${sim.backendPort}/health`)).status, 200);

    assert.equal(
      (await call("DELETE", `/v2/droplets/${droplet.id}`, "/v2/droplets/{droplet_id}")).status,
      204,
    );
    await assert.rejects(
      fetch(`http://${privateIp}:${sim.backendPort}/hello`),
      "a destroyed droplet refuses connections",
    );
    assert.equal((await call("GET", `/v2/droplets/${droplet.id}`, "/v2/droplets/{droplet_id}")).status, 404);
  });

  it("pages lists with links and meta, 20 by default and at most 200", async () => {
    const names = Array.from({ length: 10 }, (_, i) => `page-${i}`);
    for (let batch = 0; batch < 3; batch++) {
      await call("POST", "/v2/droplets", "/v2/droplets", {
        names: names.map((n) => `${n}-${batch}`),
        size: "s-1vcpu-1gb",
        image: "ubuntu-24-04-x64",
        tags: ["paged"],
      });
    }
    const first = await call("GET", "/v2/droplets?tag_name=paged", "/v2/droplets");
    const body = first.body as {
      droplets: unknown[];
      links: { pages: { next: string; last: string } };
      meta: { total: number };
    };
    assert.equal(body.droplets.length, 20);
    assert.equal(body.meta.total, 30);
    assert.match(body.links.pages.next, /page=2/);
    const second = await call("GET", "/v2/droplets?tag_name=paged&page=2", "/v2/droplets");
    assert.equal((second.body as { droplets: unknown[] }).droplets.length, 10);
    assert.equal((await sim.api("GET", "/v2/droplets?per_page=201")).status, 400);
    assert.equal((await call("DELETE", "/v2/droplets?tag_name=paged", "/v2/droplets")).status, 204);
    assert.equal(
      ((await call("GET", "/v2/droplets?tag_name=paged", "/v2/droplets")).body as { meta: { total: number } })
        .meta.total,
      0,
    );
  });

  it("answers account, actions, regions and sizes in the spec's shapes", async () => {
    await call("GET", "/v2/account", "/v2/account");
    const actions = await call("GET", "/v2/actions", "/v2/actions");
    const first = (actions.body as { actions: Array<{ id: number }> }).actions[0];
    assert.ok(first);
    await call("GET", `/v2/actions/${first.id}`, "/v2/actions/{action_id}");
    await call("GET", "/v2/regions", "/v2/regions");
    await call("GET", "/v2/sizes", "/v2/sizes");
  });

  it("fails like the real API: 401, 404, 422 with its error shape, 429 and 5xx on demand", async () => {
    const unauthorized = await call("GET", "/v2/droplets", "/v2/droplets", undefined, "wrong-token");
    assert.equal(unauthorized.status, 401);
    assert.equal((unauthorized.body as { id: string }).id, "unauthorized");
    assert.equal((await call("GET", "/v2/droplets/999", "/v2/droplets/{droplet_id}")).status, 404);
    const invalid = await call("POST", "/v2/droplets", "/v2/droplets", { name: "x", size: 5 });
    assert.equal(invalid.status, 422);
    assert.match((invalid.body as { message: string }).message, /invalid request body/);
    const region = await call("POST", "/v2/droplets", "/v2/droplets", {
      name: "x",
      region: "mars1",
      size: "s-1vcpu-1gb",
      image: "ubuntu-24-04-x64",
    });
    assert.equal(region.status, 422);
    assert.equal(
      (region.body as { message: string }).message,
      "You specified an invalid region for Droplet creation.",
    );
    const size = await call("POST", "/v2/droplets", "/v2/droplets", {
      name: "x",
      size: "huge",
      image: "ubuntu-24-04-x64",
    });
    assert.match((size.body as { message: string }).message, /invalid size/);
    const image = await call("POST", "/v2/droplets", "/v2/droplets", {
      name: "x",
      size: "s-1vcpu-1gb",
      image: "windows-95",
    });
    assert.match((image.body as { message: string }).message, /invalid image/);

    await sim.faults({ failNext: { status: 429, count: 1 } });
    const limited = await call("GET", "/v2/droplets", "/v2/droplets");
    assert.equal(limited.status, 429);
    assert.ok(Number(limited.headers.get("ratelimit-reset")) * 1000 >= Date.now());
    await sim.faults({ failNext: { status: 503, count: 1 } });
    assert.equal((await call("GET", "/v2/droplets", "/v2/droplets")).status, 503);
    assert.equal(
      (await call("GET", "/v2/droplets", "/v2/droplets")).status,
      200,
      "the fault was for one request only",
    );
  });

  it("rate-limits past the burst and says when the limit resets", async () => {
    const local = workspace("");
    const limitedSim = await startSim(local, ["--burst", "3"]);
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 5; i++) statuses.push((await limitedSim.api("GET", "/v2/account")).status);
      assert.deepEqual(statuses, [200, 200, 200, 429, 429]);
      const reply = await limitedSim.api("GET", "/v2/account");
      assert.equal(reply.headers.get("ratelimit-remaining"), "0");
      const resetMs = Number(reply.headers.get("ratelimit-reset")) * 1000;
      assert.ok(resetMs > Date.now() && resetMs <= Date.now() + 61_000);
    } finally {
      await limitedSim.daemon.stop();
      local.cleanup();
    }
  });

  it("answers the API around droplets that DigitalOcean's tools use: account team, tags, SSH keys, images, droplet actions", async () => {
    const account = await call("GET", "/v2/account", "/v2/account");
    assert.equal(
      typeof (account.body as { account: { team: { uuid: string } } }).account.team.uuid,
      "string",
    );
    assert.equal((await call("POST", "/v2/tags", "/v2/tags", { name: "web:prod" })).status, 201);
    assert.equal((await call("GET", "/v2/tags/web:prod", "/v2/tags/{tag_id}")).status, 200);
    const tags = await call("GET", "/v2/tags", "/v2/tags");
    assert.ok((tags.body as { tags: Array<{ name: string }> }).tags.some((t) => t.name === "web:prod"));
    assert.equal((await call("POST", "/v2/tags", "/v2/tags", { name: "bad tag" })).status, 422);
    const key = await call("POST", "/v2/account/keys", "/v2/account/keys", {
      name: "ops",
      public_key: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG5vdC1hLXJlYWwta2V5 ops@example",
    });
    assert.equal(key.status, 201);
    const keys = await call("GET", "/v2/account/keys", "/v2/account/keys");
    assert.equal((keys.body as { ssh_keys: unknown[] }).ssh_keys.length, 1);
    const images = await call("GET", "/v2/images", "/v2/images");
    const slug = (images.body as { images: Array<{ slug: string; id: number }> }).images[0];
    assert.ok(slug);
    assert.equal((await call("GET", `/v2/images/${slug.slug}`, "/v2/images/{image_id}")).status, 200);
    assert.equal((await call("GET", `/v2/images/${slug.id}`, "/v2/images/{image_id}")).status, 200);

    // Droplet validation as the API does it: tag characters and user data size.
    const base = { name: "checked", size: "s-1vcpu-1gb", image: "ubuntu-24-04-x64" };
    assert.equal(
      (await call("POST", "/v2/droplets", "/v2/droplets", { ...base, tags: ["no spaces"] })).status,
      422,
    );
    assert.equal(
      (await call("POST", "/v2/droplets", "/v2/droplets", { ...base, user_data: "x".repeat(65 * 1024) }))
        .status,
      422,
    );

    // Power off: an action in progress, the droplet locked (actions and deletes refused), then off.
    const created = await call("POST", "/v2/droplets", "/v2/droplets", { ...base, name: "powered" });
    const id = (created.body as { droplet: { id: number } }).droplet.id;
    await waitFor(
      async () => (await sim.state()).droplets.find((d) => d.id === id)?.status === "active",
      "boot",
    );
    const off = await call("POST", `/v2/droplets/${id}/actions`, "/v2/droplets/{droplet_id}/actions", {
      type: "power_off",
    });
    assert.equal(off.status, 201);
    const action = (off.body as { action: { id: number; status: string; type: string } }).action;
    assert.deepEqual([action.status, action.type], ["in-progress", "power_off"]);
    const locked = await call("GET", `/v2/droplets/${id}`, "/v2/droplets/{droplet_id}");
    assert.equal((locked.body as { droplet: { locked: boolean } }).droplet.locked, true);
    assert.equal(
      (
        await call("POST", `/v2/droplets/${id}/actions`, "/v2/droplets/{droplet_id}/actions", {
          type: "reboot",
        })
      ).status,
      422,
    );
    assert.equal((await call("DELETE", `/v2/droplets/${id}`, "/v2/droplets/{droplet_id}")).status, 422);
    await waitFor(
      async () =>
        (
          (
            await call(
              "GET",
              `/v2/droplets/${id}/actions/${action.id}`,
              "/v2/droplets/{droplet_id}/actions/{action_id}",
            )
          ).body as { action: { status: string } }
        ).action.status === "completed",
      "the power-off to complete",
    );
    assert.equal((await sim.state()).droplets.find((d) => d.id === id)?.status, "off");
    assert.equal(
      (
        await call("POST", `/v2/droplets/${id}/actions`, "/v2/droplets/{droplet_id}/actions", {
          type: "power_on",
        })
      ).status,
      201,
    );
    await waitFor(
      async () => (await sim.state()).droplets.find((d) => d.id === id)?.status === "active",
      "power on",
    );
    assert.equal((await call("DELETE", `/v2/droplets/${id}`, "/v2/droplets/{droplet_id}")).status, 204);
  });

  it("reserves, assigns, moves and releases reserved IPs with locking actions, as DigitalOcean does", async () => {
    const created = await call("POST", "/v2/droplets", "/v2/droplets", {
      names: ["proxy-a", "proxy-b"],
      region: "nyc3",
      size: "s-1vcpu-1gb",
      image: "ubuntu-24-04-x64",
    });
    const [a, b] = (created.body as { droplets: Array<{ id: number }> }).droplets.map((d) => d.id) as [
      number,
      number,
    ];
    const ipPath = "/v2/reserved_ips/{reserved_ip}";
    const actionsPath = "/v2/reserved_ips/{reserved_ip}/actions";
    const holder = async (ip: string) =>
      (
        (await call("GET", `/v2/reserved_ips/${ip}`, ipPath)).body as {
          reserved_ip: { droplet: { id: number } | null };
        }
      ).reserved_ip.droplet?.id ?? null;
    const settled = async (ip: string, actionId: number) =>
      waitFor(
        async () =>
          (
            (await call("GET", `/v2/reserved_ips/${ip}/actions/${actionId}`, `${actionsPath}/{action_id}`))
              .body as {
              action: { status: string };
            }
          ).action.status === "completed",
        `reserved IP action ${actionId} to complete`,
      );

    // Reserved in a region, unassigned.
    const reserved = await call("POST", "/v2/reserved_ips", "/v2/reserved_ips", { region: "nyc3" });
    assert.equal(reserved.status, 202);
    const ip = (reserved.body as { reserved_ip: { ip: string; droplet: unknown } }).reserved_ip.ip;
    assert.match(ip, /^127\.0\.3\.\d+$/);
    assert.equal(await holder(ip), null);

    // Assigned to a: the address is locked until the action completes, then a holds it.
    const assign = await call("POST", `/v2/reserved_ips/${ip}/actions`, actionsPath, {
      type: "assign",
      droplet_id: a,
    });
    assert.equal(assign.status, 201);
    const action = (
      assign.body as { action: { id: number; type: string; resource_type: string; status: string } }
    ).action;
    assert.deepEqual(
      [action.type, action.resource_type, action.status],
      ["assign_ip", "reserved_ip", "in-progress"],
    );
    const busy = await call("POST", `/v2/reserved_ips/${ip}/actions`, actionsPath, {
      type: "assign",
      droplet_id: b,
    });
    assert.equal(busy.status, 422, "a locked reserved IP refuses new actions");
    await settled(ip, action.id);
    assert.equal(await holder(ip), a);

    // Moved to b in one assign, as a failover does.
    const move = await call("POST", `/v2/reserved_ips/${ip}/actions`, actionsPath, {
      type: "assign",
      droplet_id: b,
    });
    await settled(ip, (move.body as { action: { id: number } }).action.id);
    assert.equal(await holder(ip), b);
    const listed = await call("GET", `/v2/reserved_ips/${ip}/actions`, actionsPath);
    assert.equal((listed.body as { actions: unknown[] }).actions.length, 2);
    assert.equal((await call("GET", "/v2/reserved_ips", "/v2/reserved_ips")).status, 200);

    // Invalid bodies and unknown addresses fail in the API's error shape.
    assert.equal(
      (await call("POST", `/v2/reserved_ips/${ip}/actions`, actionsPath, { type: "teleport" })).status,
      422,
    );
    assert.equal(
      (await call("POST", `/v2/reserved_ips/${ip}/actions`, actionsPath, { type: "assign", droplet_id: 42 }))
        .status,
      422,
    );
    assert.equal((await call("GET", "/v2/reserved_ips/127.0.3.254", ipPath)).status, 404);

    // Created for a droplet: assigned by the create, with links to the droplet and the action.
    const forB = await call("POST", "/v2/reserved_ips", "/v2/reserved_ips", { droplet_id: b });
    const links = (forB.body as { links: { actions: Array<{ id: number }> } }).links;
    const second = (forB.body as { reserved_ip: { ip: string } }).reserved_ip.ip;
    await settled(second, links.actions[0]?.id as number);
    assert.equal(await holder(second), b);

    // Unassigned, and a destroyed droplet loses its address.
    const unassign = await call("POST", `/v2/reserved_ips/${second}/actions`, actionsPath, {
      type: "unassign",
    });
    await settled(second, (unassign.body as { action: { id: number } }).action.id);
    assert.equal(await holder(second), null);
    assert.equal((await call("DELETE", `/v2/droplets/${b}`, "/v2/droplets/{droplet_id}")).status, 204);
    assert.equal(await holder(ip), null);
    assert.equal((await call("DELETE", `/v2/reserved_ips/${second}`, ipPath)).status, 204);
    assert.equal((await call("DELETE", `/v2/droplets/${a}`, "/v2/droplets/{droplet_id}")).status, 204);
  });
});
