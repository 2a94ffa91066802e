import { randomUUID } from "node:crypto";
import type { ServerResponse } from "node:http";
import { ApiFailure, send } from "./answer.js";
import type { SimContext } from "./context.js";
import type { FaultChange } from "./faults.js";
import type { RequestLog } from "./request-log.js";
import { dropletJson, elsewhereRequest, type SimDroplet } from "./state.js";

/**
 * Test and demo control (/_sim/*): GET state, requests and billing; POST faults, capacity and
 * droplets made outside doproxy. Never rate limited, never logged, never faulted.
 */
export async function control(
  sim: SimContext,
  requests: RequestLog,
  method: string,
  url: URL,
  body: unknown,
  res: ServerResponse,
): Promise<void> {
  const { state } = sim;
  if (url.pathname === "/_sim/state") {
    send(res, 200, {
      droplets: [...state.droplets.values()].map((d) => ({
        id: d.id,
        name: d.name,
        status: d.status,
        tags: d.tags,
        address: d.privateIp ? `${d.privateIp}:${sim.options.backendPort}` : null,
        inFlight: d.server?.inFlight ?? 0,
        served: d.server?.served ?? 0,
        unhealthy: d.unhealthy,
        createdMs: d.createdMs,
      })),
      faults: sim.faults,
      destroyedWithInFlight: state.destroyedWithInFlight,
      created: state.created,
      reservedIps: sim.reservedIps.snapshot(),
    });
    return;
  }
  if (url.pathname === "/_sim/requests") {
    send(res, 200, { requests: requests.records });
    return;
  }
  if (url.pathname === "/_sim/billing" && method === "GET") {
    send(res, 200, state.billing.report(url.searchParams.get("tag") ?? undefined));
    return;
  }
  if (url.pathname === "/_sim/droplets" && method === "POST") {
    send(res, 201, { droplet: dropletJson(await createElsewhere(sim, body)) });
    return;
  }
  if (url.pathname === "/_sim/faults" && method === "POST") {
    applyFaults(sim, (body ?? {}) as FaultChange);
    send(res, 200, { faults: sim.faults });
    return;
  }
  send(res, 404, { id: "not_found", message: "unknown simulator control endpoint" });
}

/** POST /_sim/faults: changes the faults in force (a 400 for a change the injector refuses). */
function applyFaults(sim: SimContext, change: FaultChange): void {
  const { state } = sim;
  try {
    sim.injector.apply(change, {
      state,
      limiter: sim.limiter,
      failHealth: (id, failing) => {
        const droplet = state.droplets.get(id);
        if (!droplet) return;
        if (!failing) droplet.unhealthy = false;
        if (droplet.server) {
          droplet.server.failingHealth = failing;
          if (!failing) droplet.server.unhealthy = false;
        }
      },
    });
  } catch (error) {
    throw new ApiFailure(400, (error as Error).message);
  }
}

/** POST /_sim/droplets: a droplet made by hand or by another tool, for adoption tests. */
function createElsewhere(sim: SimContext, body: unknown): Promise<SimDroplet> {
  let request: ReturnType<typeof elsewhereRequest>;
  try {
    request = elsewhereRequest(body);
  } catch (error) {
    throw new ApiFailure(422, (error as Error).message);
  }
  return sim.state.createElsewhere(
    { ...request.spec, vpcUuid: randomUUID() },
    request.status,
    request.activeAfterMs,
  );
}
