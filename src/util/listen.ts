import type { AddressInfo, Server } from "node:net";
import type { HostPort } from "./address.js";

/** Binds a server (http, https or net) and resolves with the address it got; port 0 gets one from the OS. */
export function listenOn(server: Server, address: HostPort): Promise<HostPort> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error) => reject(error);
    server.once("error", onError);
    server.listen(address.port, address.host, () => {
      server.off("error", onError);
      const bound = server.address() as AddressInfo;
      resolve({ host: bound.address, port: bound.port });
    });
  });
}
