import type { Daemon } from "./cli.js";

/** The admin URL a running serve logged. */
export async function adminUrl(daemon: Daemon): Promise<string> {
  const line = await daemon.waitForLog((l) => l.msg === "admin listening", "the admin listener");
  return line.url as string;
}

export async function getJson<T>(url: string, token?: string): Promise<{ status: number; body: T }> {
  const response = await fetch(url, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  const text = await response.text();
  return {
    status: response.status,
    body: (text.startsWith("{") || text.startsWith("[") ? JSON.parse(text) : text) as T,
  };
}
