import type { IncomingMessage, ServerResponse } from "node:http";
import { ATOMIC_WRITE_BYTES, type Logger, lineWriter } from "../../log.js";

/** Takes a batch of access lines: pieces of whole lines, each at most ATOMIC_WRITE_BYTES unless one line is longer. */
export type AccessLogSink = (pieces: string[]) => void;

/** The sink that writes each piece to a logger's destination, in order. */
export function destinationSink(log: Logger): AccessLogSink {
  const write = lineWriter(log);
  return (pieces) => {
    for (const piece of pieces) write(piece);
  };
}

/** What the access log needs from one finished request. */
export interface AccessRecord {
  startedAt: number;
  attempts: number;
  rttMs: number | undefined;
  servedBy: string | undefined;
  error: string | undefined;
  /** Lines of the same kind left out since the last one written (sampled rejections). */
  suppressed?: number;
  /** The response was cut before its end (the backend failed mid-way, the client left, a deadline). */
  aborted?: boolean;
}

/** Lines wait at most this long before they are written, together. */
const FLUSH_MS = 50;
/** ... or until this many bytes have gathered. */
const FLUSH_BYTES = 64 * 1024;

const round2 = (value: number) => Math.round(value * 100) / 100;

/**
 * One `request` line per client request (method, target, status, backend, round-trip and total
 * time, attempts, error), in the same JSON shape pino writes, to the same destination. Built by
 * hand from known fields rather than through pino: the access line has no nested objects and no
 * field that can hold a secret, so pino's generic serialisation and redaction (a fifth of the
 * proxy's throughput, measured) buy nothing here; and lines are written in batches (every 50 ms
 * or 64 KiB) instead of one write each. A batch is handed over in pieces of whole lines, each
 * small enough for one atomic write (ATOMIC_WRITE_BYTES), so no other process writing to the same
 * stdout can split a line (`atomicWrites` in log.ts). A proxy worker hands its batches to the
 * primary instead (`sink`), which writes every process's access lines: one writer, whole lines.
 */
export class AccessLog {
  /** Full pieces waiting for the flush, then the piece being filled and its size in bytes. */
  private pieces: string[] = [];
  private piece = "";
  private pieceBytes = 0;
  private batchBytes = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly sink: AccessLogSink;
  /** `"pid":123,"worker":1,` — the logger's bindings, serialised once. */
  private readonly bindings: string;

  /** `sink`: where a batch goes; the logger's destination unless given. */
  constructor(
    private readonly log: Logger,
    sink?: AccessLogSink,
  ) {
    this.sink = sink ?? destinationSink(log);
    const bindings = { pid: process.pid, ...log.bindings() };
    this.bindings = JSON.stringify(bindings).slice(1, -1);
  }

  /**
   * `status` is the status the client was sent, 0 when it got none. `aborted` marks a response
   * cut before its end: then the status counts only if its head was written to the client's socket
   * (not when it was only stored, or queued behind a pipelined answer on a connection that went),
   * so a backend that failed after its headers is not logged as a success.
   */
  record(req: IncomingMessage, res: ServerResponse, record: AccessRecord, now: number): void {
    if (!this.log.isLevelEnabled("info")) return;
    const sent = record.aborted
      ? (res as ServerResponse & { _headerSent?: boolean })._headerSent === true && res.socket !== null
      : res.headersSent;
    let line = `{"level":"info","time":${Date.now()},${this.bindings},"method":${JSON.stringify(req.method ?? "")},"path":${JSON.stringify(req.url ?? "")},"status":${sent ? res.statusCode : 0},"backend":${record.servedBy === undefined ? "null" : JSON.stringify(record.servedBy)},"rtt_ms":${record.rttMs === undefined ? "null" : round2(record.rttMs)},"total_ms":${round2(now - record.startedAt)},"attempts":${record.attempts}`;
    if (record.error) line += `,"error":${JSON.stringify(record.error)}`;
    if (record.suppressed) line += `,"suppressed":${record.suppressed}`;
    if (record.aborted) line += `,"aborted":true`;
    line += `,"msg":"request"}\n`;
    const bytes = Buffer.byteLength(line);
    if (this.pieceBytes > 0 && this.pieceBytes + bytes > ATOMIC_WRITE_BYTES) {
      this.pieces.push(this.piece);
      this.piece = "";
      this.pieceBytes = 0;
    }
    this.piece += line;
    this.pieceBytes += bytes;
    this.batchBytes += bytes;
    if (this.batchBytes >= FLUSH_BYTES) this.flush();
    else if (!this.timer) {
      this.timer = setTimeout(() => this.flush(), FLUSH_MS);
      this.timer.unref();
    }
  }

  /** Writes what has gathered now (and at shutdown). */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.pieceBytes > 0) this.pieces.push(this.piece);
    if (this.pieces.length === 0) return;
    const pieces = this.pieces;
    this.pieces = [];
    this.piece = "";
    this.pieceBytes = 0;
    this.batchBytes = 0;
    this.sink(pieces);
  }
}
