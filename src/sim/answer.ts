import type { IncomingMessage, ServerResponse } from "node:http";

/** What a resource answers: an HTTP status and a JSON payload (none for a 204). */
export interface Answer {
  status: number;
  payload?: unknown;
}

const ERROR_IDS: Record<number, string> = {
  400: "bad_request",
  401: "unauthorized",
  404: "not_found",
  422: "unprocessable_entity",
  429: "too_many_requests",
  500: "server_error",
  502: "bad_gateway",
  503: "service_unavailable",
};

/**
 * The simulator's answer of an API error: caught by its router and sent as the HTTP status and
 * DigitalOcean's `{ id, message }` body; never thrown to a person. doproxy's own side reads that
 * answer in cloud/digitalocean.ts as an `ApiError` (code DOPROXY_API), so it stays out of the
 * error catalogue (errors.ts).
 */
export class ApiFailure extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** DigitalOcean's 404 for a resource that does not exist. */
export function notFound(): ApiFailure {
  return new ApiFailure(404, "The resource you were accessing could not be found.");
}

/** A 422 for a request body the API document refuses (the first three reasons). */
export function checkBody(errors: string[]): void {
  if (errors.length > 0) throw new ApiFailure(422, `invalid request body: ${errors.slice(0, 3).join("; ")}`);
}

/** The status and DigitalOcean's error body for anything thrown while answering. */
export function failureAnswer(error: unknown, requestId: string): Answer & { status: number } {
  const status = error instanceof ApiFailure ? error.status : 500;
  const message = error instanceof ApiFailure ? error.message : "Server was unable to give you a response.";
  return { status, payload: { id: ERROR_IDS[status] ?? "error", message, request_id: requestId } };
}

export function resetConnection(res: ServerResponse): void {
  const socket = res.socket;
  if (!socket) return;
  // A TCP reset where the platform allows it (the client sees ECONNRESET), else a plain close.
  if (typeof socket.resetAndDestroy === "function") socket.resetAndDestroy();
  else socket.destroy();
}

export async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  if (chunks.length === 0) return undefined;
  const text = Buffer.concat(chunks).toString("utf8");
  if (text.trim() === "") return undefined;
  try {
    return JSON.parse(text);
  } catch {
    throw new ApiFailure(400, "The request body is not valid JSON.");
  }
}

export function send(res: ServerResponse, status: number, payload?: unknown): void {
  if (status === 204 || payload === undefined) {
    res.writeHead(status, { "content-type": "application/json; charset=utf-8" });
    res.end();
    return;
  }
  const body = JSON.stringify(payload);
  res.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(body),
  });
  res.end(body);
}
