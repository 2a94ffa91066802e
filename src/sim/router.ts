import { type Answer, notFound } from "./answer.js";
import type { Resource, Route, SimContext } from "./context.js";
import { account } from "./resources/account.js";
import { catalogue } from "./resources/catalogue.js";
import { dropletActions } from "./resources/droplet-actions.js";
import { droplets } from "./resources/droplets.js";
import { reservedIps } from "./resources/reserved-ips.js";
import { tags } from "./resources/tags.js";

/** The API's resources, each in its own file under resources/: a new one is a line here. */
const RESOURCES: Resource[] = [droplets, dropletActions, reservedIps, tags, account, catalogue];

/** The /v2 router: the first resource that knows a path answers it; a 404 when none does. */
export class Router {
  private readonly routes: Route[];

  constructor(sim: SimContext) {
    this.routes = RESOURCES.map((resource) => resource(sim));
  }

  async route(method: string, url: URL, body: unknown): Promise<Answer> {
    const request = { method, path: url.pathname.replace(/\/+$/, ""), url, body };
    for (const route of this.routes) {
      const answer = await route(request);
      if (answer) return answer;
    }
    throw notFound();
  }
}
