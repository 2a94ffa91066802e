import { ApiFailure, notFound } from "../answer.js";
import type { Resource } from "../context.js";

/** Tags: those created with POST /v2/tags and those on droplets, with their counts. */
export const tags: Resource = (sim) => {
  const created = new Set<string>();
  const tagJson = (name: string) => {
    const count = sim.state.tagged(name).length;
    return { name, resources: { count, droplets: { count } } };
  };
  return ({ method, path, url, body }) => {
    if (path === "/v2/tags" && method === "GET") {
      const names = new Set([...created, ...sim.state.tagged(undefined).flatMap((d) => d.tags)]);
      return sim.list(url, "tags", [...names].sort().map(tagJson));
    }
    if (path === "/v2/tags" && method === "POST") {
      const name = (body as { name?: unknown } | undefined)?.name;
      if (typeof name !== "string" || !/^[A-Za-z0-9_:-]{1,255}$/.test(name))
        throw new ApiFailure(
          422,
          "Tag name is invalid: tags may contain letters, numbers, colons, dashes, and underscores.",
        );
      created.add(name);
      return { status: 201, payload: { tag: tagJson(name) } };
    }
    const one = /^\/v2\/tags\/([A-Za-z0-9_:-]+)$/.exec(path);
    if (one && method === "GET") {
      const name = one[1] as string;
      if (!created.has(name) && sim.state.tagged(name).length === 0) throw notFound();
      return { status: 200, payload: { tag: tagJson(name) } };
    }
    if (one && method === "DELETE") {
      if (!created.delete(one[1] as string)) throw notFound();
      return { status: 204 };
    }
    return undefined;
  };
};
