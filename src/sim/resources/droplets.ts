import { randomUUID } from "node:crypto";
import { type Answer, ApiFailure, checkBody, notFound } from "../answer.js";
import { imageFor, REGIONS, SIZES } from "../catalogue.js";
import type { Resource, SimContext } from "../context.js";
import { PENDING_EVENT } from "../faults.js";
import { dropletJson, type SimDroplet } from "../state.js";

const TAG = /^[A-Za-z0-9_:-]{1,255}$/;
const NAME = /^[a-zA-Z0-9]([a-zA-Z0-9.-]{0,253}[a-zA-Z0-9])?$/;

/** Droplets: list (by tag or name), create one or several, show, delete one or by tag. */
export const droplets: Resource = (sim) => async (request) => {
  const { method, path, url } = request;
  const { state } = sim;
  if (path === "/v2/droplets" && method === "GET") {
    sim.checkQuery("get", "/v2/droplets", url);
    const tag = url.searchParams.get("tag_name") ?? undefined;
    const name = url.searchParams.get("name");
    const all = state.tagged(tag).filter((d) => !name || d.name === name);
    return sim.list(url, "droplets", all.map(dropletJson));
  }
  if (path === "/v2/droplets" && method === "POST") return delayedCreate(sim, request.body, url.origin);
  if (path === "/v2/droplets" && method === "DELETE") {
    const tag = url.searchParams.get("tag_name");
    if (!tag) throw new ApiFailure(422, "tag_name is required to delete droplets by tag.");
    await Promise.all(state.tagged(tag).map((d) => state.destroy(d)));
    return { status: 204 };
  }
  const one = /^\/v2\/droplets\/(\d+)$/.exec(path);
  if (one && method === "GET") {
    const droplet = state.visible(Number(one[1]));
    if (!droplet) throw notFound();
    return { status: 200, payload: { droplet: dropletJson(droplet) } };
  }
  if (one && method === "DELETE") {
    // A delete reaches a droplet even while lists lag behind it (so nothing created can leak).
    const target = state.droplets.get(Number(one[1]));
    if (!target) throw notFound();
    // A fault: a droplet created moments ago is 404 to a delete while it still exists and bills.
    if (Date.now() - target.createdMs < sim.faults.deleteNotFoundYoungMs) throw notFound();
    if (target.locked) throw new ApiFailure(422, PENDING_EVENT);
    await state.destroy(target);
    return { status: 204 };
  }
  return undefined;
};

/** A create, answered `createDelayMs` after its droplets were made (they exist and bill meanwhile). */
async function delayedCreate(sim: SimContext, body: unknown, origin: string): Promise<Answer> {
  const before = sim.state.created.length;
  try {
    return createDroplets(sim, body, origin);
  } finally {
    if (sim.faults.createDelayMs > 0 && sim.state.created.length > before)
      await new Promise((resolve) => setTimeout(resolve, sim.faults.createDelayMs));
  }
}

interface CreateRequest {
  name?: string;
  names?: string[];
  region?: string;
  size: string;
  image: string | number;
  tags?: string[] | null;
  vpc_uuid?: string;
  user_data?: string;
}

/** The checks DigitalOcean makes of a create beyond its document's schema, in its words. */
function checkCreate(sim: SimContext, request: CreateRequest, names: string[], region: string): void {
  if (names.length === 0 || names.length > 10)
    throw new ApiFailure(422, "You may only create between 1 and 10 Droplets at a time.");
  for (const name of names) {
    if (!NAME.test(name)) throw new ApiFailure(422, `Name is invalid: ${name}`);
  }
  for (const tag of request.tags ?? []) {
    if (!TAG.test(tag))
      throw new ApiFailure(
        422,
        `Tag "${tag}" is invalid: tags may contain letters, numbers, colons, dashes, and underscores.`,
      );
  }
  if (request.user_data !== undefined && Buffer.byteLength(request.user_data) > 64 * 1024)
    throw new ApiFailure(422, "user_data is too long: the maximum size is 64 KiB.");
  if (sim.faults.unavailableSizes.includes(request.size))
    throw new ApiFailure(422, "Size is not available in this region.");
  if (!REGIONS.some((r) => r.slug === region))
    throw new ApiFailure(422, "You specified an invalid region for Droplet creation.");
  if (!SIZES.some((s) => s.slug === request.size))
    throw new ApiFailure(422, "You specified an invalid size for Droplet creation.");
  if (!imageFor(request.image))
    throw new ApiFailure(422, "You specified an invalid image for Droplet creation.");
  const limit = sim.options.dropletLimit;
  if (sim.state.droplets.size + names.length > limit) {
    throw new ApiFailure(422, `creating this/these droplet(s) will exceed your droplet limit (${limit})`);
  }
}

function createDroplets(sim: SimContext, body: unknown, origin: string): Answer {
  checkBody(sim.spec.validateRequestBody("post", "/v2/droplets", body));
  const request = body as CreateRequest;
  const names = request.names ?? [request.name as string];
  const region = request.region ?? "nyc3";
  checkCreate(sim, request, names, region);
  const image = imageFor(request.image);
  const created = names.map((name) =>
    sim.state.create(
      {
        name,
        region,
        size: request.size,
        image: request.image,
        tags: request.tags ?? [],
        vpcUuid: request.vpc_uuid || randomUUID(),
        userData: request.user_data,
      },
      sim.injector.takeDropletFaults(request.image, image?.slug ?? undefined, image?.id),
    ),
  );
  if (sim.injector.take("nameCollision")) {
    // Names are not unique on DigitalOcean: another team's droplet with the same name, untagged.
    for (const d of created)
      sim.state.create({
        name: d.name,
        region,
        size: request.size,
        image: request.image,
        tags: [],
        vpcUuid: randomUUID(),
      });
  }
  if (sim.injector.take("acceptThenFail"))
    throw new ApiFailure(500, "Server was unable to give you a response.");
  const actions = created.map((d) => ({
    id: d.createActionId,
    rel: "create",
    href: `${origin}/v2/actions/${d.createActionId}`,
  }));
  const payload = request.names
    ? { droplets: created.map(dropletJson), links: { actions } }
    : { droplet: dropletJson(created[0] as SimDroplet), links: { actions } };
  return { status: 202, payload };
}
