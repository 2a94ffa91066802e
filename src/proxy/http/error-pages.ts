import type { OutgoingHttpHeaders, ServerResponse } from "node:http";
import type { Socket } from "node:net";

/** The answers doproxy itself gives, as short plain-text pages. */
export type ProxyStatus = 400 | 405 | 408 | 414 | 429 | 431 | 500 | 502 | 503 | 504 | 505;

const TITLES: Record<ProxyStatus, string> = {
  400: "Bad Request",
  405: "Method Not Allowed",
  408: "Request Timeout",
  414: "URI Too Long",
  429: "Too Many Requests",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
  505: "HTTP Version Not Supported",
};

/** Answers a request that is still unanswered; false when a response had already started. */
export function sendErrorPage(
  res: ServerResponse,
  status: ProxyStatus,
  detail: string,
  close: boolean,
  extra?: OutgoingHttpHeaders,
): boolean {
  if (res.headersSent || res.destroyed) return false;
  const body = `${status} ${TITLES[status]}: ${detail}\n`;
  const headers: OutgoingHttpHeaders = {
    "content-type": "text/plain; charset=utf-8",
    "content-length": Buffer.byteLength(body),
    connection: close ? "close" : "keep-alive",
    ...extra,
  };
  res.writeHead(status, headers);
  res.end(body);
  return true;
}

/** Answers on a raw socket (a parse error or an upgrade that cannot go on) and closes it. */
export function sendRawError(socket: Socket, status: ProxyStatus): void {
  if (!socket.writable || socket.destroyed) {
    socket.destroy();
    return;
  }
  socket.end(`HTTP/1.1 ${status} ${TITLES[status]}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n`);
}
