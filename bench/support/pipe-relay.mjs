// Baseline for the benchmarks: the simplest possible Node TCP relay (socket.pipe both ways,
// no parsing, no authentication). Usage: node pipe-relay.mjs UPSTREAM_PORT
// Prints "listening PORT" when ready.
import net from 'node:net';

const upstreamPort = Number(process.argv[2]);
const server = net.createServer({ noDelay: true }, (client) => {
  const upstream = net.connect({ host: '127.0.0.1', port: upstreamPort, noDelay: true });
  client.pipe(upstream).pipe(client);
  client.on('error', () => upstream.destroy());
  upstream.on('error', () => client.destroy());
});
server.listen(0, '127.0.0.1', () => console.log(`listening ${server.address().port}`));
process.on('SIGTERM', () => process.exit(0));
