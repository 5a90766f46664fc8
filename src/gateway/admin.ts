/**
 * The gateway's admin endpoint (Istio's status port is 15021): /healthz 200 while the process serves, 503 once it
 * drains (so a load balancer stops sending); /readyz 200 once routes have arrived and it is not draining; /metrics.
 */
import { createServer, type Server } from 'node:http';
import type { Registry as PromRegistry } from 'prom-client';
import type { GatewayHandle } from './gateway.js';
import type { RouteSource } from './route-sources.js';

export interface AdminHandle {
  host: string;
  port: number;
  close(): Promise<void>;
}

export async function startGatewayAdmin(options: { host: string; port: number; gateway: GatewayHandle; routes: RouteSource; metrics: PromRegistry }): Promise<AdminHandle> {
  const { gateway, routes, metrics } = options;
  const server: Server = createServer((req, res) => {
    const send = (status: number, body: object): void => {
      res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(body));
    };
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET') {
      send(405, { error: 'GET only' });
    } else if (path === '/healthz') {
      send(gateway.draining() ? 503 : 200, { status: gateway.draining() ? 'draining' : 'ok', connections: gateway.connections() });
    } else if (path === '/readyz') {
      const ready = routes.ready() && !gateway.draining();
      send(ready ? 200 : 503, { status: gateway.draining() ? 'draining' : ready ? 'ready' : 'waiting for routes', serverNames: routes.current().size });
    } else if (path === '/metrics') {
      void metrics.metrics().then((text) => {
        res.writeHead(200, { 'content-type': metrics.contentType }).end(text);
      });
    } else {
      send(404, { error: `no such path: ${(path ?? '').slice(0, 100)}` });
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  return {
    host: options.host,
    port: typeof address === 'object' && address !== null ? address.port : options.port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => {
          resolve();
        });
      }),
  };
}
