import { UsageError } from "../errors.js";
import { createLogger, flushLog } from "../log.js";
import { Simulator } from "../sim/api.js";
import { parseHostPort } from "../util/address.js";
import { parseDuration } from "../util/duration.js";

export interface SimCommandOptions {
  listen: string;
  token?: string;
  bootTime: string;
  capacity: string;
  serviceTime: string;
  backendPort: string;
  healthPath: string;
  burst: string;
  hourly: string;
  dropletLimit: string;
  failRate: string;
  slow: string;
  neverBoot: string;
  listLag: string;
  deleteLag: string;
  unhealthy: string;
  unhealthyImage?: string;
  createDelay: string;
  deleteNotFoundYoung: string;
  shiftPages: string;
  realistic?: boolean;
}

/** --realistic: lags like DigitalOcean's, for the demo and the end-to-end tests. */
const REALISTIC = { listLagMs: 3_000, deleteLagMs: 15_000 };

function positiveInt(flag: string, text: string, min = 1): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min)
    throw new UsageError(`${flag} ${text}: expected a whole number of at least ${min}`);
  return n;
}

function wholeNumber(flag: string, text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n)) throw new UsageError(`${flag} ${text}: expected a whole number`);
  return n;
}

function duration(flag: string, text: string): number {
  const ms = parseDuration(text);
  if (ms === undefined) throw new UsageError(`${flag} ${text}: expected a duration such as 500ms or 2s`);
  return ms;
}

/** `doproxy sim`: a local DigitalOcean API whose droplets are real HTTP servers on 127.0.1.N. */
export async function sim(options: SimCommandOptions): Promise<void> {
  const listen = parseHostPort(options.listen);
  if (!listen) throw new UsageError(`--listen ${options.listen}: expected HOST:PORT`);
  const failRate = Number(options.failRate);
  if (!(failRate >= 0 && failRate <= 1))
    throw new UsageError(`--fail-rate ${options.failRate}: expected a share from 0 to 1`);
  const log = createLogger({ destination: "stdout" });
  const simulator = new Simulator(
    {
      token: options.token,
      bootTimeMs: duration("--boot-time", options.bootTime),
      capacity: positiveInt("--capacity", options.capacity),
      serviceTimeMs: duration("--service-time", options.serviceTime),
      backendPort: positiveInt("--backend-port", options.backendPort),
      healthPath: options.healthPath,
      perMinute: positiveInt("--burst", options.burst),
      perHour: positiveInt("--hourly", options.hourly),
      dropletLimit: positiveInt("--droplet-limit", options.dropletLimit),
      faults: {
        failRate,
        slowMs: duration("--slow", options.slow),
        neverBoot: positiveInt("--never-boot", options.neverBoot, 0),
        listLagMs: options.realistic ? REALISTIC.listLagMs : duration("--list-lag", options.listLag),
        deleteLagMs: options.realistic ? REALISTIC.deleteLagMs : duration("--delete-lag", options.deleteLag),
        unhealthy: positiveInt("--unhealthy", options.unhealthy, 0),
        unhealthyImage: options.unhealthyImage ?? null,
        createDelayMs: duration("--create-delay", options.createDelay),
        deleteNotFoundYoungMs: duration("--delete-not-found-young", options.deleteNotFoundYoung),
        shiftPages: wholeNumber("--shift-pages", options.shiftPages),
      },
    },
    log,
  );
  let url: string;
  try {
    url = await simulator.listen(listen.host, listen.port);
  } catch (error) {
    throw new UsageError(
      `cannot listen on ${options.listen}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
    );
  }
  log.info(
    {
      url,
      auth: options.token ? "bearer token required" : "any token",
      backendPort: Number(options.backendPort),
    },
    "simulator listening",
  );
  const stop = async () => {
    log.info({}, "simulator stopping; destroying simulated droplets");
    await simulator.close();
    flushLog(log);
    process.exit(0);
  };
  process.on("SIGTERM", () => void stop());
  process.on("SIGINT", () => void stop());
}
