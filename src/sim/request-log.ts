/** One /v2 request as GET /_sim/requests shows it. */
export interface RequestRecord {
  ts: number;
  method: string;
  path: string;
  query: Record<string, string>;
  status: number;
  /** The connection was reset instead of answered (a resetNext fault). */
  reset?: boolean;
}

/** The simulator's /v2 requests, oldest first: the last 9,000 to 10,000 of them. */
export class RequestLog {
  readonly records: RequestRecord[] = [];

  /** Records a request (its status filled in when answered). */
  start(method: string, url: URL): RequestRecord {
    const record: RequestRecord = {
      ts: Date.now(),
      method,
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      status: 0,
    };
    this.records.push(record);
    if (this.records.length > 10_000) this.records.splice(0, 1000);
    return record;
  }
}
