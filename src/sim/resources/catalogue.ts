import { notFound } from "../answer.js";
import { IMAGES, imageFor, imageJson, REGIONS, regionJson, SIZES, sizeJson } from "../catalogue.js";
import type { Resource } from "../context.js";

const IMAGE_CREATED = "2026-01-01T00:00:00Z";

/** The catalogue: regions, sizes and images (the list and one by id or slug). */
export const catalogue: Resource =
  (sim) =>
  ({ method, path, url }) => {
    if (method !== "GET") return undefined;
    if (path === "/v2/regions")
      return sim.list(
        url,
        "regions",
        REGIONS.map((r) => regionJson(r.slug)),
      );
    if (path === "/v2/sizes")
      return sim.list(
        url,
        "sizes",
        SIZES.map((s) => sizeJson(s.slug)),
      );
    if (path === "/v2/images")
      return sim.list(
        url,
        "images",
        IMAGES.map((image) => imageJson(image, IMAGE_CREATED)),
      );
    const one = /^\/v2\/images\/([\w.-]+)$/.exec(path);
    if (!one) return undefined;
    const key = one[1] as string;
    const image = imageFor(/^\d+$/.test(key) ? Number(key) : key);
    if (!image) throw notFound();
    return { status: 200, payload: { image: imageJson(image, IMAGE_CREATED) } };
  };
