// A free TCP port on loopback, for a test's own server (kvmstrap serve --http-port). The port is
// released before it is returned, so another process may take it first: good enough for tests.
import { createServer } from "node:net";

export const freeTcp = (): Promise<number> =>
  new Promise<number>((resolve) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const a = s.address();
      s.close(() => resolve(typeof a === "object" && a ? a.port : 0));
    });
  });
