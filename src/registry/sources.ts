import type { Cluster } from '../model/cluster.js';
import type { StaticService } from '../model/federation-file.js';
import type { Logger } from '../logging.js';
import { KubeSource, type KubeSourceOptions } from './kube/kube-source.js';
import type { ClusterSource, SourceEvents } from './source.js';
import { StaticSource } from './static-source.js';

export interface CreateSourceOptions {
  logger: Logger;
  /** options for Kubernetes sources (probe intervals, backoff, what a kubeconfig may do) */
  kube?: KubeSourceOptions;
}

/** A source that could not be built: it reports why, so the cluster stays visible with the reason instead of vanishing. */
class BrokenSource implements ClusterSource {
  constructor(readonly reason: string) {}

  start(events: SourceEvents): void {
    events.failed(this.reason);
  }

  stop(): Promise<void> {
    return Promise.resolve();
  }
}

/**
 * The source for a cluster: a Kubernetes cluster is watched through its API server, a static cluster
 * serves the services it was given. Never throws: a source that cannot be built reports its failure
 * to the registry when started, which keeps the cluster registered and says why it is not ready.
 */
export function createSource(cluster: Cluster, services: StaticService[] | undefined, options: CreateSourceOptions): ClusterSource {
  if (cluster.source.type === 'static') return new StaticSource(cluster.name, services ?? []);
  try {
    return new KubeSource(cluster, { ...options.kube, logger: options.kube?.logger ?? options.logger });
  } catch (error) {
    const reason = `cannot watch this cluster: ${(error as Error).message.split('\n')[0] ?? ''}`;
    options.logger.warn({ cluster: cluster.name, reason }, 'cluster source not started');
    return new BrokenSource(reason);
  }
}
