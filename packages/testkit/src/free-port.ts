import { createServer } from 'node:net';

/**
 * Finds a TCP port that is free right now on `host` (default `127.0.0.1`): listens on port 0,
 * reads the port the kernel chose, and closes. Another process may take it before the caller
 * binds it, so launchers retry with a new port when binding fails.
 */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen({ port: 0, host, exclusive: true }, () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        server.close();
        reject(new Error(`could not read the port chosen on ${host}`));
        return;
      }
      const { port } = address;
      server.close((error) => (error ? reject(error) : resolve(port)));
    });
  });
}
