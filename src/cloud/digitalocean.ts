import { readFileSync } from "node:fs";
import type { AxiosError, AxiosInstance } from "axios";
import { DigitalOcean } from "digitalocean-js";
import { instance as sharedAxios } from "digitalocean-js/src/lib/axios-instance.js";
import type { Config } from "../config/load.js";
import { ApiError, type ApiFailureReason, ConfigError, FencedError } from "../errors.js";
import { scrubSecrets } from "../util/secrets.js";
import { ApiBudget } from "./api-budget.js";
import type { CloudDroplet, CloudProvider, CloudReservedIp, CreateResult } from "./provider.js";
import { DEFAULT_RETRY, decideRetry, type RetryPolicy } from "./retry.js";

/** The API answer shape for a droplet, as far as doproxy reads it. */
interface ApiDroplet {
  id: number;
  name: string;
  status: CloudDroplet["status"];
  tags?: string[];
  created_at: string;
  vcpus?: number;
  networks?: { v4?: Array<{ ip_address: string; type: "public" | "private" }> };
}

/** Sees every API call's outcome, for metrics and logs: "ok", "retry", "error". */
export type CallObserver = (operation: string, outcome: "ok" | "retry" | "error", detail?: string) => void;

export interface ProviderOptions {
  observe?: CallObserver;
  policy?: RetryPolicy;
  sleep?: (ms: number) => Promise<void>;
  /**
   * Fencing (docs/digitalocean.md, "Money invariants"): asked immediately before every request that changes
   * something (each batch of a create, each retry, each destroy, each reserved-IP action); false
   * and the request is not sent (FencedError). serve passes its leadership's local check (the
   * renewal loop's last confirmed term and deadline), so a deposed leader makes no such call.
   */
  mayMutate?: () => boolean;
  /** The clock of the API budget's hour (tests drive an hour of it). */
  clock?: () => number;
}

/**
 * Every answer's rate-limit headers reach the budgets of the providers in this process
 * (digitalocean-js keeps one module-wide axios instance, so the hook is installed once).
 */
const headerListeners = new Set<(headers: Record<string, unknown> | undefined) => void>();
let headersHooked = false;
function hookHeaders(http: AxiosInstance): void {
  if (headersHooked) return;
  headersHooked = true;
  http.interceptors.response.use(
    (response) => {
      for (const listener of headerListeners) listener(response.headers as Record<string, unknown>);
      return response;
    },
    (error: AxiosError) => {
      for (const listener of headerListeners)
        listener(error.response?.headers as Record<string, unknown> | undefined);
      return Promise.reject(error);
    },
  );
}

const PAGE_SIZE = 200; // the API's maximum: the fewest requests for a complete list
/** DigitalOcean refuses user data larger than this. */
export const MAX_USER_DATA_BYTES = 64 * 1024;

function toCloud(d: ApiDroplet): CloudDroplet {
  const v4 = d.networks?.v4 ?? [];
  return {
    id: d.id,
    name: d.name,
    status: d.status,
    tags: d.tags ?? [],
    privateIp: v4.find((n) => n.type === "private")?.ip_address,
    publicIp: v4.find((n) => n.type === "public")?.ip_address,
    createdAt: d.created_at,
    vcpus: d.vcpus,
  };
}

/**
 * The DigitalOcean adapter, through digitalocean-js. The library keeps one module-wide axios
 * instance (so one token per process, which is all doproxy needs), does not page, and has no
 * timeout; those are fixed here at the narrowest point: a timeout on that shared instance, and
 * the one list call doproxy relies on made through the same instance with per_page=200 and the
 * `links.pages.next` chain followed to the end. Every call goes through the retry policy.
 */
export class DigitalOceanProvider implements CloudProvider {
  readonly description: string;
  private readonly client: DigitalOcean;
  private readonly http: AxiosInstance;
  private readonly observe: CallObserver;
  private readonly policy: RetryPolicy;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly mayMutate: () => boolean;
  /** This token's request budget and the account's remaining requests (docs/digitalocean.md, "API budget"). */
  readonly budget: ApiBudget;

  constructor(
    private readonly config: Config["digitalocean"],
    readonly ownerTag: string,
    options: ProviderOptions = {},
  ) {
    this.observe = options.observe ?? (() => undefined);
    this.policy = options.policy ?? DEFAULT_RETRY;
    this.sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
    this.mayMutate = options.mayMutate ?? (() => true);
    this.budget = new ApiBudget(config.apiBudgetPerHour, options.clock);
    if (!config.token) {
      throw new ConfigError(
        `no DigitalOcean API token: it comes from ${config.tokenSource}, which is empty`,
        "export DIGITALOCEAN_TOKEN=... (or set [digitalocean] token); for the local simulator any value works",
      );
    }
    this.description = `DigitalOcean API at ${config.apiUrl}`;
    this.client = new DigitalOcean(config.token, `${config.apiUrl}/v2`);
    this.http = sharedAxios as unknown as AxiosInstance;
    this.http.defaults.timeout = 30_000;
    hookHeaders(this.http);
    headerListeners.add((headers) => this.budget.observe(headers));
  }

  pollStretch(): number {
    return this.budget.stretch();
  }

  async verify(): Promise<void> {
    await this.call("account", () => this.client.account.getUserInformation());
  }

  async createDroplets(
    names: string[],
    stillWanted?: (batch: string[]) => Promise<string[]>,
  ): Promise<CreateResult> {
    const userData = this.config.userDataFile ? readFileSync(this.config.userDataFile, "utf8") : undefined;
    if (userData !== undefined && Buffer.byteLength(userData) > MAX_USER_DATA_BYTES)
      throw new ConfigError(
        `[digitalocean] user-data-file ${this.config.userDataFile} is ${Buffer.byteLength(userData)} bytes; DigitalOcean accepts at most 64 KiB`,
      );
    const request = {
      region: this.config.region,
      size: this.config.size,
      image: this.config.image,
      ssh_keys: this.config.sshKeys,
      tags: [...new Set([...this.config.tags, this.ownerTag])],
      ...(userData ? { user_data: userData } : {}),
      ...(this.config.vpcUuid ? { vpc_uuid: this.config.vpcUuid } : {}),
      monitoring: false,
      ipv6: false,
    };
    const created: CloudDroplet[] = [];
    const dropped: string[] = [];
    // The API creates at most ten droplets per request.
    for (let i = 0; i < names.length; i += 10) {
      const whole = names.slice(i, i + 10);
      // A later batch may go out minutes after the first (429 waits): only names still wanted.
      const batch = i > 0 && stillWanted ? await stillWanted(whole) : whole;
      for (const name of whole) if (!batch.includes(name)) dropped.push(name);
      if (batch.length === 0) continue;
      try {
        const droplets = await this.call(
          "create",
          async () => {
            const result =
              batch.length === 1
                ? [await this.client.droplets.createNewDroplet({ ...request, name: batch[0] } as never)]
                : await this.client.droplets.createMultipleDroplets({ ...request, names: batch } as never);
            return (result as unknown as ApiDroplet[]).map(toCloud);
          },
          { idempotent: false, mutating: true },
        );
        created.push(...droplets);
      } catch (error) {
        // Fenced before it left: not sent, like the batches after it; the created ones still count.
        if (!(error instanceof ApiError) && !(error instanceof FencedError)) throw error;
        return { created, failed: { names: batch, error }, notSent: [...dropped, ...names.slice(i + 10)] };
      }
    }
    return { created, failed: undefined, notSent: dropped };
  }

  async getDroplet(id: number): Promise<CloudDroplet | undefined> {
    try {
      return await this.call("get", async () =>
        toCloud((await this.client.droplets.getExistingDroplet(id)) as unknown as ApiDroplet),
      );
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) return undefined;
      throw error;
    }
  }

  async hourlyPrice(): Promise<number | undefined> {
    const data = await this.call("sizes", async () => {
      const response = await this.http.get("/sizes", { params: { per_page: PAGE_SIZE } });
      return response.data as { sizes: { slug: string; price_hourly?: number }[] };
    });
    const price = data.sizes.find((s) => s.slug === this.config.size)?.price_hourly;
    return typeof price === "number" && price > 0 ? price : undefined;
  }

  async getReservedIp(ip: string): Promise<CloudReservedIp | undefined> {
    try {
      const data = await this.call("reserved-ip", async () => {
        const response = await this.http.get(`/reserved_ips/${encodeURIComponent(ip)}`);
        return response.data as {
          reserved_ip: { ip: string; droplet: { id: number } | null; locked: boolean };
        };
      });
      return {
        ip: data.reserved_ip.ip,
        dropletId: data.reserved_ip.droplet?.id ?? null,
        locked: data.reserved_ip.locked,
      };
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) return undefined;
      throw error;
    }
  }

  async assignReservedIp(ip: string, dropletId: number): Promise<number> {
    // Assigning twice to the same droplet is harmless, so a retried assign is safe.
    const data = await this.call(
      "reserved-ip-assign",
      async () => {
        const response = await this.http.post(`/reserved_ips/${encodeURIComponent(ip)}/actions`, {
          type: "assign",
          droplet_id: dropletId,
        });
        return response.data as { action: { id: number } };
      },
      { mutating: true },
    );
    return data.action.id;
  }

  listOwned(): Promise<CloudDroplet[]> {
    return this.listTagged(this.ownerTag);
  }

  listTagged(tag: string): Promise<CloudDroplet[]> {
    return this.listWhere({ tag_name: tag });
  }

  listNamed(name: string): Promise<CloudDroplet[]> {
    return this.listWhere({ name });
  }

  private async listWhere(filter: { tag_name: string } | { name: string }): Promise<CloudDroplet[]> {
    const all: CloudDroplet[] = [];
    const seen = new Set<number>();
    let page = 1;
    for (;;) {
      const data = await this.call("list", async () => {
        const response = await this.http.get("/droplets", {
          params: { ...filter, page, per_page: PAGE_SIZE },
        });
        return response.data as {
          droplets: ApiDroplet[];
          links?: { pages?: { next?: string } };
          meta?: { total?: number };
        };
      });
      // Pages can shift between requests (droplets created or deleted meanwhile): no droplet twice.
      for (const droplet of data.droplets)
        if (!seen.has(droplet.id)) {
          seen.add(droplet.id);
          all.push(toCloud(droplet));
        }
      const more = data.links?.pages?.next !== undefined && data.droplets.length > 0;
      if (!more || page > 10_000) return all;
      page++;
    }
  }

  async checkCatalogue(): Promise<string[]> {
    const { region, size, image } = this.config;
    const problems: string[] = [];
    const regions = await this.call("regions", async () => {
      const response = await this.http.get("/regions", { params: { per_page: PAGE_SIZE } });
      return (response.data as { regions: Array<{ slug: string; available: boolean }> }).regions;
    });
    const found = regions.find((r) => r.slug === region);
    if (!found) problems.push(`[digitalocean] region "${region}" does not exist`);
    else if (!found.available)
      problems.push(`[digitalocean] region "${region}" is not available for new droplets`);
    const sizes = await this.call("sizes", async () => {
      const response = await this.http.get("/sizes", { params: { per_page: PAGE_SIZE } });
      return (response.data as { sizes: Array<{ slug: string; available: boolean; regions: string[] }> })
        .sizes;
    });
    const sized = sizes.find((s) => s.slug === size);
    if (!sized) problems.push(`[digitalocean] size "${size}" does not exist`);
    else if (!sized.available || !sized.regions.includes(region))
      problems.push(`[digitalocean] size "${size}" is not available in ${region}`);
    try {
      await this.call("image", () => this.http.get(`/images/${encodeURIComponent(image)}`));
    } catch (error) {
      if (error instanceof ApiError && error.status === 404)
        problems.push(`[digitalocean] image "${image}" does not exist`);
      else throw error;
    }
    return problems;
  }

  async destroyDroplet(id: number): Promise<"destroyed" | "not-found"> {
    try {
      await this.call("destroy", () => this.client.droplets.deleteDroplet(id), { mutating: true });
      return "destroyed";
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) return "not-found";
      throw error;
    }
  }

  /**
   * Runs one API operation under the retry policy and turns failures into ApiError. A call that
   * is not idempotent (a create) is retried only when the API certainly did not act on it (a 429,
   * a refused connection); any other failure may have created something and is final, marked
   * ambiguous for the caller to settle by lookups.
   */
  private async call<T>(
    operation: string,
    fn: () => Promise<T>,
    options: { idempotent?: boolean; mutating?: boolean } = {},
  ): Promise<T> {
    const idempotent = options.idempotent ?? true;
    for (let attempt = 1; ; attempt++) {
      // Fenced right before the request leaves, on every attempt: a retry after a long 429 wait
      // may find that this process no longer leads.
      if (options.mutating && !this.mayMutate())
        throw new FencedError(`not sent (${operation}): this proxy does not lead the pool (any more)`);
      this.budget.spend();
      try {
        const result = await fn();
        this.observe(operation, "ok");
        return result;
      } catch (error) {
        const failure = describeAxiosError(error);
        const notActedOn = failure.status === 429 || failure.code === "ECONNREFUSED";
        const ambiguous =
          !idempotent && !notActedOn && (failure.status === undefined || failure.status >= 500);
        const decision =
          idempotent || notActedOn
            ? decideRetry(failure, attempt, this.policy, Date.now(), Math.random)
            : ({ retry: false } as const);
        if (!decision.retry) {
          this.observe(operation, "error", failure.message);
          throw this.toApiError(operation, failure, attempt, ambiguous);
        }
        this.observe(operation, "retry", `${decision.reason}; retrying in ${decision.delayMs}ms`);
        await this.sleep(decision.delayMs);
      }
    }
  }

  private toApiError(
    operation: string,
    failure: ReturnType<typeof describeAxiosError>,
    attempts: number,
    ambiguous: boolean,
  ): ApiError {
    const error = ambiguous
      ? this.describeAmbiguous(operation, failure)
      : this.describeFailure(operation, failure, attempts);
    const requestId = failure.requestId;
    return new ApiError(requestId ? `${error.message} [request_id ${requestId}]` : error.message, {
      status: failure.status,
      hint: error.hint,
      reason: classify(failure),
      ambiguous,
      requestId,
    });
  }

  /**
   * A call that may have taken effect (a create answered 5xx, timed out or reset after it was
   * sent): says the outcome is unknown and never suggests sending it again, which could duplicate.
   */
  private describeAmbiguous(
    operation: string,
    failure: ReturnType<typeof describeAxiosError>,
  ): { message: string; hint: string } {
    const answer = failure.status === undefined ? failure.message : `${failure.status}: ${failure.message}`;
    return {
      message: `DigitalOcean ${operation}: outcome unknown (${answer}); the request was sent and may have taken effect`,
      hint: "not sent again: doproxy settles it by looking the droplets up by the pool's ownership tag and name (`doproxy droplets sync` shows what it finds)",
    };
  }

  private describeFailure(
    operation: string,
    failure: ReturnType<typeof describeAxiosError>,
    attempts: number,
  ): { message: string; hint?: string } {
    const { status, message } = failure;
    const what = `DigitalOcean ${operation}`;
    if (status === 401) {
      return {
        message: `DigitalOcean rejected the API token (401: ${message})`,
        hint: `the token comes from ${this.config.tokenSource}; check that it is current and has the scopes docs/digitalocean.md lists`,
      };
    }
    if (status === 403)
      return {
        message: `${what} was forbidden (403: ${message})`,
        hint: "the token lacks a scope this needs",
      };
    if (status === 404) return { message: `${what}: not found (404: ${message})` };
    if (status === 422 && classify(failure) === "droplet-limit")
      return {
        message: `DigitalOcean refused the ${operation} request: the account's droplet limit is reached (422: ${message})`,
        hint: "ask DigitalOcean for a higher droplet limit, or lower [autoscale] max",
      };
    if (status === 422)
      return {
        message: `DigitalOcean refused the ${operation} request (422): ${message}`,
        hint: "check [digitalocean] region, size, image and ssh-keys",
      };
    if (status === 429)
      return {
        message: `DigitalOcean rate limit reached for ${operation} (429: ${message})`,
        hint: "wait for the limit to reset, or lower how often doproxy scales",
      };
    if (status === undefined) {
      return {
        message: `cannot reach the ${this.description} (${message}) after ${attempts} attempts`,
        hint: "check [digitalocean] api-url and the network",
      };
    }
    return {
      message: `${what} failed after ${attempts} attempts (${status}: ${message})`,
      hint: "DigitalOcean may be having trouble; try again later",
    };
  }
}

interface FailureDescription {
  status: number | undefined;
  message: string;
  rateLimitReset: number | undefined;
  retryAfter: number | undefined;
  requestId: string | undefined;
  /** The network error code (ECONNREFUSED ...), when there was no answer. */
  code: string | undefined;
}

/** Extracts what the retry policy and the messages need from an axios error, never config or headers (which carry the token). */
function describeAxiosError(error: unknown): FailureDescription {
  const axiosError = error as AxiosError<{ message?: string; id?: string; request_id?: string }>;
  const response = axiosError.response;
  if (response) {
    const reset = Number(response.headers?.["ratelimit-reset"]);
    const retryAfter = Number(response.headers?.["retry-after"]);
    return {
      status: response.status,
      message: scrubSecrets(response.data?.message ?? response.statusText ?? "error"),
      rateLimitReset: Number.isFinite(reset) && reset > 0 ? reset : undefined,
      retryAfter: Number.isFinite(retryAfter) && retryAfter >= 0 ? retryAfter : undefined,
      requestId: typeof response.data?.request_id === "string" ? response.data.request_id : undefined,
      code: undefined,
    };
  }
  const code = axiosError.code ?? (error as Error).message;
  return {
    status: undefined,
    message: scrubSecrets(String(code)),
    rateLimitReset: undefined,
    retryAfter: undefined,
    requestId: undefined,
    code: axiosError.code,
  };
}

/**
 * The failure as a reason code. DigitalOcean states a droplet limit or an unavailable size only
 * in its 422 message, so this is the one place that reads it.
 */
export function classify(failure: { status: number | undefined; message: string }): ApiFailureReason {
  const { status, message } = failure;
  if (status === undefined) return "network";
  if (status === 401) return "auth";
  if (status === 403) return "forbidden";
  if (status === 404) return "not-found";
  if (status === 429) return "rate-limited";
  if (status === 422 && /droplet limit/i.test(message)) return "droplet-limit";
  if (status === 422 && /size.*(not available|unavailable)|(not available|unavailable).*size/i.test(message))
    return "size-unavailable";
  if (status >= 500) return "server";
  return "invalid";
}
