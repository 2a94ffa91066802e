import { ApiFailure, notFound } from "../answer.js";
import type { Resource } from "../context.js";
import { PENDING_EVENT } from "../faults.js";
import { actionJson, POWER_ACTIONS, type PowerAction } from "../state.js";

/**
 * Actions: the account's list and one by id, and a droplet's own (power and reboot, with their
 * progress and the droplet locked meanwhile).
 */
export const dropletActions: Resource = (sim) => (request) => {
  const { method, path, url, body } = request;
  const { state } = sim;
  if (path === "/v2/actions" && method === "GET") {
    sim.checkQuery("get", "/v2/actions", url);
    return sim.list(url, "actions", [...state.actions.values()].map(actionJson));
  }
  const one = /^\/v2\/actions\/(\d+)$/.exec(path);
  if (one && method === "GET") {
    const action = state.actions.get(Number(one[1]));
    if (!action) throw notFound();
    return { status: 200, payload: { action: actionJson(action) } };
  }
  const actions = /^\/v2\/droplets\/(\d+)\/actions(?:\/(\d+))?$/.exec(path);
  if (!actions) return undefined;
  const droplet = state.visible(Number(actions[1]));
  if (!droplet) throw notFound();
  const mine = [...state.actions.values()].filter((a) => a.resourceId === droplet.id);
  if (actions[2] !== undefined && method === "GET") {
    const action = mine.find((a) => a.id === Number(actions[2]));
    if (!action) throw notFound();
    return { status: 200, payload: { action: actionJson(action) } };
  }
  if (method === "GET") return sim.list(url, "actions", mine.map(actionJson));
  if (method === "POST") {
    const type = (body as { type?: unknown } | undefined)?.type;
    if (!POWER_ACTIONS.includes(type as PowerAction))
      throw new ApiFailure(422, `The action type "${String(type)}" is not supported by the simulator.`);
    if (droplet.locked || sim.injector.takePendingConflict()) throw new ApiFailure(422, PENDING_EVENT);
    return { status: 201, payload: { action: actionJson(state.runAction(droplet, type as PowerAction)) } };
  }
  return undefined;
};
