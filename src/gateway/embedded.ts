/**
 * The gateways `meshfed serve` runs itself: one per loopback gateway address of a static (simulated) cluster, with
 * routes read in process from the xDS provider. A gateway address that is not loopback belongs to a real cluster
 * and is left alone.
 */
import { isIP } from 'node:net';
import type { Registry as PromRegistry } from 'prom-client';
import type { Cluster } from '../model/cluster.js';
import type { Logger } from '../logging.js';
import type { ResourceProvider } from '../xds/ads-server.js';
import { startGateway, type GatewayHandle } from './gateway.js';
import { GatewayMetrics } from './metrics.js';
import { gatewayNode, providerRouteSource, type RouteSource } from './route-sources.js';

export interface EmbeddedGateway {
  cluster: string;
  handle: GatewayHandle;
  routes: RouteSource;
}

const isLoopback = (address: string): boolean => (isIP(address) === 4 && address.startsWith('127.')) || address === '::1';

/** Starts the embedded gateways; if one cannot listen, those already started are closed and the error is thrown. */
export async function startEmbeddedGateways(clusters: readonly Cluster[], provider: ResourceProvider, logger: Logger, metrics?: PromRegistry): Promise<EmbeddedGateway[]> {
  const gatewayMetrics = new GatewayMetrics(metrics);
  const started: EmbeddedGateway[] = [];
  try {
    for (const cluster of clusters) {
      if (cluster.source.type !== 'static') continue;
      for (const gw of cluster.gateways.filter((g) => isLoopback(g.address))) {
        const routes = providerRouteSource(provider, gatewayNode(`meshfed-embedded~${cluster.name}`, cluster.name, cluster.network), logger);
        try {
          started.push({ cluster: cluster.name, handle: await startGateway({ host: gw.address, port: gw.port, routes, logger, metrics: gatewayMetrics }), routes });
        } catch (error) {
          routes.close();
          throw error;
        }
      }
    }
  } catch (error) {
    await closeEmbeddedGateways(started);
    throw new Error(`embedded gateway: ${(error as Error).message} (another process on that port? serve --no-gateways runs without them)`, { cause: error });
  }
  return started;
}

export async function closeEmbeddedGateways(gateways: readonly EmbeddedGateway[]): Promise<void> {
  await Promise.all(
    gateways.map(async (g) => {
      await g.handle.close();
      g.routes.close();
    }),
  );
}
