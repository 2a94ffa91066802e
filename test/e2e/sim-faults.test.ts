import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { ApiSpec } from "../../src/sim/spec.js";
import { type Workspace, workspace } from "../helpers/cli.js";
import { type SimHandle, startSim } from "../helpers/sim.js";
import { waitFor } from "../helpers/wait.js";

type Droplet = {
  id: number;
  name: string;
  status: string;
  tags: string[];
  networks: { v4: Array<{ ip_address: string; type: string }> };
};

interface Billing {
  tag: string | null;
  alive: number;
  peak: number;
  timeline: Array<{ ts: number; alive: number }>;
}

const BASE = { size: "s-1vcpu-1gb", image: "ubuntu-24-04-x64", region: "nyc3" };

/**
 * The faults the money invariants (issue #23) are reproduced with, each as a client of the
 * simulator sees it: a real `doproxy sim` on loopback, real HTTP requests, every /v2 answer
 * checked against DigitalOcean's OpenAPI document.
 */
describe("doproxy sim faults for the money invariants", () => {
  const spec = new ApiSpec();
  let ws: Workspace;
  let sim: SimHandle;

  before(async () => {
    ws = workspace("");
    // The bad image is set by flag, as a demo would.
    sim = await startSim(ws, ["--unhealthy-image", "debian-12-x64"]);
  });
  after(async () => {
    await sim?.daemon.stop();
    ws?.cleanup();
  });

  /** A /v2 call whose answer must conform to the spec and carry the rate-limit headers. */
  async function call(method: string, path: string, specPath: string, body?: unknown, on = sim) {
    const reply = await on.api(method, path, body);
    assert.deepEqual(
      spec.validateResponse(method, specPath, reply.status, reply.body),
      [],
      `${method} ${path} -> ${reply.status} ${JSON.stringify(reply.body ?? null).slice(0, 300)}`,
    );
    for (const header of ["ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"])
      assert.match(reply.headers.get(header) ?? "", /^\d+$/, `${method} ${path} ${reply.status}: ${header}`);
    return reply;
  }

  async function faults(change: Record<string, unknown>, on = sim): Promise<void> {
    const reply = await on.api("POST", "/_sim/faults", change);
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
  }

  async function create(body: Record<string, unknown>): Promise<Droplet> {
    const reply = await call("POST", "/v2/droplets", "/v2/droplets", { ...BASE, ...body });
    assert.equal(reply.status, 202, JSON.stringify(reply.body));
    return (reply.body as { droplet: Droplet }).droplet;
  }

  async function get(id: number): Promise<Droplet> {
    const reply = await call("GET", `/v2/droplets/${id}`, "/v2/droplets/{droplet_id}");
    assert.equal(reply.status, 200);
    return (reply.body as { droplet: Droplet }).droplet;
  }

  async function active(id: number): Promise<Droplet> {
    return waitFor(async () => {
      const d = await get(id);
      return d.status === "active" ? d : undefined;
    }, `droplet ${id} to become active`);
  }

  async function health(d: Droplet): Promise<number> {
    const ip = d.networks.v4.find((n) => n.type === "public")?.ip_address;
    return (await fetch(`http://${ip}:${sim.backendPort}/health`)).status;
  }

  async function billing(tag?: string): Promise<Billing> {
    const reply = await sim.api("GET", `/_sim/billing${tag ? `?tag=${encodeURIComponent(tag)}` : ""}`);
    assert.equal(reply.status, 200);
    return reply.body as Billing;
  }

  async function simDroplet(id: number) {
    return (await sim.state()).droplets.find((d) => d.id === id);
  }

  it("unhealthy: the next N droplets boot and serve but answer 503 on the health path; a bad image never passes", async () => {
    await faults({ unhealthy: 1 });
    const sick = await create({ name: "sick-1" });
    const well = await create({ name: "well-1" });
    const badImage = await create({ name: "bad-image-1", image: "debian-12-x64" });
    const [a, b, c] = [await active(sick.id), await active(well.id), await active(badImage.id)];
    assert.equal(await health(a), 503, "the first droplet after the fault is unhealthy");
    assert.equal(await health(b), 200, "the fault was for one droplet only");
    assert.equal(await health(c), 503, "a droplet of the bad image (--unhealthy-image) is unhealthy");
    const ip = a.networks.v4.find((n) => n.type === "private")?.ip_address;
    const served = await fetch(`http://${ip}:${sim.backendPort}/hello`);
    assert.equal(served.status, 200, "the machine is up and serves");
    assert.equal((await simDroplet(sick.id))?.unhealthy, true);

    // Every new droplet of that image, at run time too; and the fault can be lifted.
    await faults({ unhealthyImage: "ubuntu-24-04-x64" });
    const also = await active((await create({ name: "bad-image-2" })).id);
    assert.equal(await health(also), 503);
    await faults({ unhealthyImage: "*" });
    const any = await active((await create({ name: "any-image", image: "debian-12-x64" })).id);
    assert.equal(await health(any), 503, '"*": every new droplet is unhealthy');
    await faults({ unhealthyImage: null, failHealth: { [also.id]: false } });
    assert.equal(await health(also), 200, "failHealth false heals an unhealthy droplet");
    for (const d of [sick, well, badImage, also, any])
      assert.equal((await call("DELETE", `/v2/droplets/${d.id}`, "/v2/droplets/{droplet_id}")).status, 204);
  });

  it("createDelayMs: the droplets exist and bill before the slow create answer arrives", async () => {
    await faults({ createDelayMs: 1500 });
    const started = Date.now();
    let answered = false;
    const pending = sim
      .api("POST", "/v2/droplets", { ...BASE, names: ["slow-1", "slow-2"], tags: ["slow"] })
      .finally(() => {
        answered = true;
      });
    const made = await waitFor(async () => {
      const names = (await sim.state()).droplets.filter((d) => d.tags.includes("slow"));
      return names.length === 2 ? names : undefined;
    }, "the slow create's droplets to exist");
    assert.equal(answered, false, "the droplets exist while the create is still unanswered");
    assert.equal((await billing("slow")).alive, 2, "and they bill");
    const reply = await pending;
    assert.ok(Date.now() - started >= 1400, "the answer came after the delay");
    assert.equal(reply.status, 202);
    assert.deepEqual(spec.validateResponse("POST", "/v2/droplets", reply.status, reply.body), []);
    assert.deepEqual(
      (reply.body as { droplets: Droplet[] }).droplets.map((d) => d.id).sort(),
      made.map((d) => d.id).sort(),
    );
    await faults({ createDelayMs: 0 });
    assert.equal((await call("DELETE", "/v2/droplets?tag_name=slow", "/v2/droplets")).status, 204);
  });

  it("POST /_sim/droplets: droplets made outside doproxy, new, off or active, untagged unless tagged", async () => {
    const make = async (body: Record<string, unknown>) => {
      const reply = await sim.api("POST", "/_sim/droplets", body);
      assert.equal(reply.status, 201, JSON.stringify(reply.body));
      return (reply.body as { droplet: Droplet }).droplet;
    };
    const soon = await make({ name: "adopt-soon", status: "new", activeAfterMs: 400 });
    const never = await make({ name: "adopt-never", status: "new" });
    const off = await make({ name: "adopt-off", status: "off" });
    const up = await make({ name: "adopt-up", status: "active", tags: ["by-hand"] });
    assert.deepEqual(soon.tags, []);
    assert.deepEqual(up.tags, ["by-hand"]);
    assert.equal((await get(soon.id)).status, "new", "listed at once, still new");
    assert.equal((await get(up.id)).status, "active");
    assert.equal(await health(up), 200, "an active one serves at once");
    await active(soon.id);
    assert.equal((await get(never.id)).status, "new", "new without activeAfterMs stays new");
    assert.equal((await get(off.id)).status, "off");
    const listed = await call("GET", "/v2/droplets?name=adopt-off", "/v2/droplets");
    assert.equal((listed.body as { droplets: Droplet[] }).droplets.length, 1);
    const on = await call("POST", `/v2/droplets/${off.id}/actions`, "/v2/droplets/{droplet_id}/actions", {
      type: "power_on",
    });
    assert.equal(on.status, 201);
    assert.equal(await health(await active(off.id)), 200, "off stays off until a power_on");
    assert.equal((await sim.api("POST", "/_sim/droplets", { name: "x", status: "gone" })).status, 422);
    for (const d of [soon, never, off, up])
      assert.equal((await call("DELETE", `/v2/droplets/${d.id}`, "/v2/droplets/{droplet_id}")).status, 204);
  });

  it("deleteNotFoundYoungMs: a DELETE of a young droplet answers 404 and leaves it alive and billing", async () => {
    await faults({ deleteNotFoundYoungMs: 60_000 });
    const young = await create({ name: "young-1", tags: ["young"] });
    const refused = await call("DELETE", `/v2/droplets/${young.id}`, "/v2/droplets/{droplet_id}");
    assert.equal(refused.status, 404);
    assert.equal((refused.body as { id: string }).id, "not_found");
    assert.ok(await simDroplet(young.id), "the droplet still exists");
    assert.equal((await billing("young")).alive, 1, "and still bills");
    await faults({ deleteNotFoundYoungMs: 0 });
    assert.equal((await call("DELETE", `/v2/droplets/${young.id}`, "/v2/droplets/{droplet_id}")).status, 204);
    assert.equal(await simDroplet(young.id), undefined);
  });

  it("resetNext: matching requests get their connection reset, before or after the create takes effect", async () => {
    const createdBefore = (await sim.state()).created.length;
    await faults({ resetNext: { count: 1, path: "/v2/droplets", method: "POST" } });
    assert.equal((await call("GET", "/v2/droplets", "/v2/droplets")).status, 200, "another method passes");
    await assert.rejects(sim.api("POST", "/v2/droplets", { ...BASE, name: "reset-1" }), "no answer");
    assert.equal((await sim.state()).created.length, createdBefore, "nothing created before the reset");

    await faults({ resetNext: { count: 1, path: "/v2/droplets", method: "POST", resetAfterCreate: true } });
    await assert.rejects(sim.api("POST", "/v2/droplets", { ...BASE, name: "reset-2", tags: ["reset"] }));
    const made = (await sim.state()).droplets.filter((d) => d.name === "reset-2");
    assert.equal(made.length, 1, "resetAfterCreate: the droplet was created, the answer lost");
    const log = await sim.requests();
    assert.equal(log.filter((r) => r.reset && r.path === "/v2/droplets" && r.method === "POST").length, 2);
    assert.equal((await call("POST", "/v2/droplets", "/v2/droplets", { ...BASE, name: "r3" })).status, 202);
    await call("DELETE", "/v2/droplets?tag_name=reset", "/v2/droplets");
  });

  it("failNext on one path and method; a 429 without retry-after (the hourly limit)", async () => {
    await faults({ failNext: { status: 429, count: 2, path: "/v2/reserved_ips", method: "POST" } });
    assert.equal((await call("POST", "/v2/tags", "/v2/tags", { name: "other" })).status, 201);
    assert.equal((await call("GET", "/v2/reserved_ips", "/v2/reserved_ips")).status, 200);
    const burst = await call("POST", "/v2/reserved_ips", "/v2/reserved_ips", { region: "nyc3" });
    assert.equal(burst.status, 429);
    assert.match(burst.headers.get("retry-after") ?? "", /^\d+$/, "a burst 429 says retry-after");
    assert.equal(burst.headers.get("ratelimit-remaining"), "0");
    assert.equal(
      (await call("POST", "/v2/reserved_ips", "/v2/reserved_ips", { region: "nyc3" })).status,
      429,
    );
    assert.equal(
      (await call("POST", "/v2/reserved_ips", "/v2/reserved_ips", { region: "nyc3" })).status,
      202,
    );

    await faults({
      failNext: { status: 429, count: 1, path: "/v2/droplets", noRetryAfter: true, resetInMs: 30_000 },
    });
    assert.equal((await call("GET", "/v2/account", "/v2/account")).status, 200);
    const hourly = await call("GET", "/v2/droplets", "/v2/droplets");
    assert.equal(hourly.status, 429);
    assert.equal(hourly.headers.get("retry-after"), null, "the hourly limit has no retry-after");
    const reset = Number(hourly.headers.get("ratelimit-reset")) * 1000;
    assert.ok(reset >= Date.now() + 25_000 && reset <= Date.now() + 31_000, "ratelimit-reset says when");
    assert.equal((await call("GET", "/v2/droplets", "/v2/droplets")).status, 200);
    assert.equal(
      (await sim.api("POST", "/_sim/faults", { failNext: { status: 429, count: -1 } })).status,
      400,
    );
  });

  it("perHour and hourlyUsed at run time: ratelimit-remaining on every answer, then hourly 429s", async () => {
    const local = workspace("");
    const near = await startSim(local);
    try {
      // Every kind of answer carries the three headers: 200, 404, 422, 401.
      await call("GET", "/v2/account", "/v2/account", undefined, near);
      await call("GET", "/v2/droplets/1", "/v2/droplets/{droplet_id}", undefined, near);
      await call("POST", "/v2/droplets", "/v2/droplets", { name: "x", size: 5 }, near);
      const notJson = await fetch(`${near.url}/v2/droplets`, {
        method: "POST",
        headers: { authorization: `Bearer ${near.token}`, "content-type": "application/json" },
        body: "{not json",
      });
      assert.equal(notJson.status, 400);
      assert.match(
        notJson.headers.get("ratelimit-remaining") ?? "",
        /^\d+$/,
        "a 400 for a body that is not JSON",
      );
      const unauthorized = await near.api("GET", "/v2/account", undefined, "wrong");
      assert.equal(unauthorized.status, 401);
      assert.match(unauthorized.headers.get("ratelimit-remaining") ?? "", /^\d+$/);

      await faults({ perHour: 1000, hourlyUsed: 995 }, near);
      const first = await call("GET", "/v2/account", "/v2/account", undefined, near);
      assert.equal(first.headers.get("ratelimit-limit"), "1000");
      const remaining = Number(first.headers.get("ratelimit-remaining"));
      assert.ok(remaining <= 4, `near the limit: ${remaining} left`);
      const statuses: number[] = [];
      let limited: Response["headers"] | undefined;
      for (let i = 0; i < remaining + 1; i++) {
        const reply = await call("GET", "/v2/account", "/v2/account", undefined, near);
        statuses.push(reply.status);
        if (reply.status === 429) limited = reply.headers;
      }
      assert.equal(statuses.at(-1), 429, statuses.join(","));
      assert.equal(limited?.get("retry-after"), null, "the hourly limit says no retry-after");
      assert.equal(limited?.get("ratelimit-remaining"), "0");
    } finally {
      await near.daemon.stop();
      local.cleanup();
    }
  });

  it("shiftPages: each page after the first shifts, so a paged list misses or repeats items", async () => {
    const made = await call("POST", "/v2/droplets", "/v2/droplets", {
      ...BASE,
      names: ["shift-0", "shift-1", "shift-2", "shift-3", "shift-4", "shift-5"],
      tags: ["shift"],
    });
    const ids = (made.body as { droplets: Droplet[] }).droplets.map((d) => d.id).sort((a, b) => a - b);
    const walk = async () => {
      const seen: number[] = [];
      for (let page = 1; page <= 3; page++) {
        const reply = await call(
          "GET",
          `/v2/droplets?tag_name=shift&per_page=2&page=${page}`,
          "/v2/droplets",
        );
        assert.equal((reply.body as { meta: { total: number } }).meta.total, 6);
        seen.push(...(reply.body as { droplets: Droplet[] }).droplets.map((d) => d.id));
      }
      return seen;
    };
    assert.deepEqual(await walk(), ids, "stable pages without the fault");
    await faults({ shiftPages: true });
    const missing = await walk();
    assert.ok(
      ids.some((id) => !missing.includes(id)),
      `a shifted walk misses an item: ${missing}`,
    );
    await faults({ shiftPages: -1 });
    const repeated = await walk();
    assert.ok(new Set(repeated).size < repeated.length, `a walk shifted back repeats an item: ${repeated}`);
    await faults({ shiftPages: 0 });
    assert.deepEqual(await walk(), ids);
    await call("DELETE", "/v2/droplets?tag_name=shift", "/v2/droplets");
  });

  it("actionPendingConflict and locked droplets: actions and reserved-IP assigns answer 422 pending event", async () => {
    const d = await active((await create({ name: "pending-1" })).id);
    const actions = `/v2/droplets/${d.id}/actions`;
    const actionsSpec = "/v2/droplets/{droplet_id}/actions";
    await faults({ actionPendingConflict: 1 });
    const refused = await call("POST", actions, actionsSpec, { type: "reboot" });
    assert.equal(refused.status, 422);
    assert.equal((refused.body as { message: string }).message, "Droplet already has a pending event.");

    // A droplet with a power action running refuses a reserved-IP assign too.
    const off = await call("POST", actions, actionsSpec, { type: "power_off" });
    assert.equal(off.status, 201, "the counted fault was for one action only");
    const reserved = await call("POST", "/v2/reserved_ips", "/v2/reserved_ips", { region: "nyc3" });
    const ip = (reserved.body as { reserved_ip: { ip: string } }).reserved_ip.ip;
    const ipActions = `/v2/reserved_ips/${ip}/actions`;
    const ipSpec = "/v2/reserved_ips/{reserved_ip}/actions";
    const locked = await call("POST", ipActions, ipSpec, { type: "assign", droplet_id: d.id });
    assert.equal(locked.status, 422);
    assert.equal((locked.body as { message: string }).message, "Droplet already has a pending event.");
    await waitFor(async () => (await simDroplet(d.id))?.status === "off", "the power-off to finish");

    // While the fault is on, every assign is refused; once off, the assign goes through.
    await faults({ actionPendingConflict: true });
    for (let i = 0; i < 2; i++)
      assert.equal((await call("POST", ipActions, ipSpec, { type: "assign", droplet_id: d.id })).status, 422);
    await faults({ actionPendingConflict: false });
    assert.equal((await call("POST", ipActions, ipSpec, { type: "assign", droplet_id: d.id })).status, 201);
    await waitFor(
      async () => (await sim.state()).reservedIps.find((r) => r.ip === ip)?.dropletId === d.id,
      "the assign to complete",
    );
    assert.equal((await call("DELETE", `/v2/droplets/${d.id}`, "/v2/droplets/{droplet_id}")).status, 204);
  });

  it("GET /_sim/billing: droplets alive at each moment, the peak, by tag", async () => {
    const tag = "billed";
    const start = await billing(tag);
    assert.deepEqual([start.alive, start.peak, start.timeline], [0, 0, []]);
    const all = (await billing()).alive;
    await faults({ deleteLagMs: 5_000, listLagMs: 5_000 });
    const many = await call("POST", "/v2/droplets", "/v2/droplets", {
      ...BASE,
      names: ["bill-1", "bill-2", "bill-3"],
      tags: [tag],
    });
    const ids = (many.body as { droplets: Droplet[] }).droplets.map((d) => d.id);
    await sim.api("POST", "/_sim/droplets", { name: "bill-untagged", status: "off" });
    const lagging = await billing(tag);
    assert.equal(lagging.alive, 3, "a droplet bills from its create, even while lists do not show it");
    // Destroyed: no longer billed, even while lists still show it (delete lag).
    assert.equal((await call("DELETE", `/v2/droplets/${ids[0]}`, "/v2/droplets/{droplet_id}")).status, 204);
    const one = await create({ name: "bill-4", tags: [tag] });
    assert.equal((await call("DELETE", `/v2/droplets/${ids[1]}`, "/v2/droplets/{droplet_id}")).status, 204);
    const report = await billing(tag);
    assert.equal(report.tag, tag);
    assert.equal(report.alive, 2);
    assert.equal(report.peak, 3);
    assert.deepEqual(
      report.timeline.map((p) => p.alive),
      [1, 2, 3, 2, 3, 2],
    );
    assert.ok(report.timeline.every((p, i, all) => i === 0 || p.ts >= (all[i - 1]?.ts ?? 0)));
    assert.equal((await billing()).alive, all + 3, "untagged droplets bill too, outside the tag");
    await faults({ deleteLagMs: 0, listLagMs: 0 });
    for (const id of [ids[2] as number, one.id]) await sim.api("DELETE", `/v2/droplets/${id}`);
    assert.equal((await billing(tag)).alive, 0);
  });
});
