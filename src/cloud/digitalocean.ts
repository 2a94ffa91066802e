import { readFileSync } from "node:fs";
import type { AxiosError, AxiosInstance } from "axios";
import { DigitalOcean } from "digitalocean-js";
import { instance as sharedAxios } from "digitalocean-js/src/lib/axios-instance.js";
import type { Config } from "../config/load.js";
import { ApiError, ConfigError } from "../errors.js";
import { scrubSecrets } from "../util/secrets.js";
import type { CloudDroplet, CloudProvider } from "./provider.js";
import { DEFAULT_RETRY, decideRetry, type RetryPolicy } from "./retry.js";

/** The API answer shape for a droplet, as far as doproxy reads it. */
interface ApiDroplet {
  id: number;
  name: string;
  status: CloudDroplet["status"];
  tags?: string[];
  created_at: string;
  networks?: { v4?: Array<{ ip_address: string; type: "public" | "private" }> };
}

/** Sees every API call's outcome, for metrics and logs: "ok", "retry", "error". */
export type CallObserver = (operation: string, outcome: "ok" | "retry" | "error", detail?: string) => void;

const PAGE_SIZE = 200; // the API's maximum: the fewest requests for a complete list

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
  readonly poolTag: string;
  private readonly client: DigitalOcean;
  private readonly http: AxiosInstance;

  constructor(
    private readonly config: Config["digitalocean"],
    private readonly observe: CallObserver = () => undefined,
    private readonly policy: RetryPolicy = DEFAULT_RETRY,
    private readonly sleep: (ms: number) => Promise<void> = (ms) =>
      new Promise((resolve) => setTimeout(resolve, ms)),
  ) {
    if (!config.token) {
      throw new ConfigError(
        `no DigitalOcean API token: it comes from ${config.tokenSource}, which is empty`,
        "export DIGITALOCEAN_TOKEN=... (or set [digitalocean] token); for the local simulator any value works",
      );
    }
    this.description = `DigitalOcean API at ${config.apiUrl}`;
    this.poolTag = config.tags[0] ?? "doproxy";
    this.client = new DigitalOcean(config.token, `${config.apiUrl}/v2`);
    this.http = sharedAxios as unknown as AxiosInstance;
    this.http.defaults.timeout = 30_000;
  }

  async verify(): Promise<void> {
    await this.call("account", () => this.client.account.getUserInformation());
  }

  async createDroplets(names: string[]): Promise<CloudDroplet[]> {
    const userData = this.config.userDataFile ? readFileSync(this.config.userDataFile, "utf8") : undefined;
    const request = {
      region: this.config.region,
      size: this.config.size,
      image: this.config.image,
      ssh_keys: this.config.sshKeys,
      tags: this.config.tags,
      ...(userData ? { user_data: userData } : {}),
      ...(this.config.vpcUuid ? { vpc_uuid: this.config.vpcUuid } : {}),
      monitoring: false,
      ipv6: false,
    };
    const created: CloudDroplet[] = [];
    // The API creates at most ten droplets per request.
    for (let i = 0; i < names.length; i += 10) {
      const batch = names.slice(i, i + 10);
      const droplets = await this.call(
        "create",
        async () => {
          const result =
            batch.length === 1
              ? [await this.client.droplets.createNewDroplet({ ...request, name: batch[0] } as never)]
              : await this.client.droplets.createMultipleDroplets({ ...request, names: batch } as never);
          return (result as unknown as ApiDroplet[]).map(toCloud);
        },
        // A create that failed in transit may still have happened: look before sending it again.
        async () => {
          const existing = (await this.listPool()).filter((d) => batch.includes(d.name));
          return existing.length === batch.length ? existing : undefined;
        },
      );
      created.push(...droplets);
    }
    return created;
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

  async listPool(): Promise<CloudDroplet[]> {
    const all: CloudDroplet[] = [];
    let page = 1;
    for (;;) {
      const data = await this.call("list", async () => {
        const response = await this.http.get("/droplets", {
          params: { tag_name: this.poolTag, page, per_page: PAGE_SIZE },
        });
        return response.data as {
          droplets: ApiDroplet[];
          links?: { pages?: { next?: string } };
          meta?: { total?: number };
        };
      });
      all.push(...data.droplets.map(toCloud));
      const more = data.links?.pages?.next !== undefined && data.droplets.length > 0;
      if (!more || page > 10_000) return all;
      page++;
    }
  }

  async destroyDroplet(id: number): Promise<void> {
    try {
      await this.call("destroy", () => this.client.droplets.deleteDroplet(id));
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) return; // already gone: the goal is met
      throw error;
    }
  }

  /** Runs one API operation under the retry policy and turns failures into ApiError messages. */
  private async call<T>(
    operation: string,
    fn: () => Promise<T>,
    beforeRetry?: () => Promise<T | undefined>,
  ): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        const result = await fn();
        this.observe(operation, "ok");
        return result;
      } catch (error) {
        const failure = describeAxiosError(error);
        const decision = decideRetry(failure, attempt, this.policy, Date.now(), Math.random);
        if (!decision.retry) {
          this.observe(operation, "error", failure.message);
          throw this.toApiError(operation, failure, attempt);
        }
        this.observe(operation, "retry", `${decision.reason}; retrying in ${decision.delayMs}ms`);
        await this.sleep(decision.delayMs);
        if (beforeRetry) {
          const already = await beforeRetry().catch(() => undefined);
          if (already !== undefined) {
            this.observe(operation, "ok");
            return already;
          }
        }
      }
    }
  }

  private toApiError(
    operation: string,
    failure: ReturnType<typeof describeAxiosError>,
    attempts: number,
  ): ApiError {
    const { status, message } = failure;
    const what = `DigitalOcean ${operation}`;
    if (status === 401) {
      return new ApiError(`DigitalOcean rejected the API token (401: ${message})`, {
        status,
        hint: `the token comes from ${this.config.tokenSource}; check that it is current and has droplet read and write scope`,
      });
    }
    if (status === 403)
      return new ApiError(`${what} was forbidden (403: ${message})`, {
        status,
        hint: "the token lacks a scope this needs",
      });
    if (status === 404) return new ApiError(`${what}: not found (404: ${message})`, { status });
    if (status === 422)
      return new ApiError(`DigitalOcean refused the ${operation} request (422): ${message}`, {
        status,
        hint: "check [digitalocean] region, size, image and ssh-keys",
      });
    if (status === 429)
      return new ApiError(`DigitalOcean rate limit reached for ${operation} (429: ${message})`, {
        status,
        hint: "wait for the limit to reset, or lower how often doproxy scales",
      });
    if (status === undefined) {
      return new ApiError(`cannot reach the ${this.description} (${message}) after ${attempts} attempts`, {
        hint: "check [digitalocean] api-url and the network",
      });
    }
    return new ApiError(`${what} failed after ${attempts} attempts (${status}: ${message})`, {
      status,
      hint: "DigitalOcean may be having trouble; try again later",
    });
  }
}

/** Extracts status, message and rate-limit reset from an axios error, without config or headers (which carry the token). */
function describeAxiosError(error: unknown): {
  status: number | undefined;
  message: string;
  rateLimitReset: number | undefined;
} {
  const axiosError = error as AxiosError<{ message?: string; id?: string }>;
  const response = axiosError.response;
  if (response) {
    const reset = Number(response.headers?.["ratelimit-reset"]);
    return {
      status: response.status,
      message: scrubSecrets(response.data?.message ?? response.statusText ?? "error"),
      rateLimitReset: Number.isFinite(reset) && reset > 0 ? reset : undefined,
    };
  }
  const code = axiosError.code ?? (error as Error).message;
  return { status: undefined, message: scrubSecrets(String(code)), rateLimitReset: undefined };
}
