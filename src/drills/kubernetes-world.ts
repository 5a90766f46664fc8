/**
 * A DrillWorld whose faults on clusters watched through the Kubernetes API are done through that API
 * (kubernetes-faults.ts), everything else by the world it wraps (the embedded federation: its clusters, traffic and
 * drains, and the faults of its simulated clusters). A scenario may mix them step by step; a fault whose region or
 * zone target would reach both kinds of cluster is refused, so no step strikes only half of what it names.
 */
import type { KubernetesFaults } from './kubernetes-faults.js';
import type { DrillWorld, Fault, FaultOptions } from './world.js';

export function withKubernetesFaults(world: DrillWorld, kube: KubernetesFaults): DrillWorld {
  /** the Kubernetes clusters a fault's target reaches */
  const reached = (fault: Fault): string[] => {
    const { cluster, region, zone } = fault.target;
    if (cluster !== undefined) return kube.owns(cluster) ? [cluster] : [];
    return world
      .clusters()
      .filter((c) => c.region === region && (zone === undefined || c.zone === zone) && kube.owns(c.name))
      .map((c) => c.name);
  };

  const refusal = (fault: Fault, options: FaultOptions): string | undefined => {
    if (fault.kind === 'drain') return world.refusal?.(fault, options);
    const clusters = reached(fault);
    if (clusters.length === 0) return world.refusal?.(fault, options);
    if (fault.target.cluster === undefined) {
      return `${fault.kind} on region ${fault.target.region ?? ''} would reach the Kubernetes cluster${clusters.length > 1 ? 's' : ''} ${clusters.join(', ')}: name each cluster in a step of its own (target.cluster)`;
    }
    return kube.refusal(fault, options);
  };

  return {
    clusters: () => world.clusters(),
    virtualDestination: (hostname) => world.virtualDestination(hostname),
    startTraffic: (spec, onRequest) => world.startTraffic(spec, onRequest),
    clusterState: (cluster) => world.clusterState(cluster),
    refusal,
    async apply(fault, options = { allowDisruptive: false }) {
      const refused = refusal(fault, options);
      if (refused !== undefined) throw new Error(refused);
      return fault.kind !== 'drain' && reached(fault).length > 0 ? kube.apply(fault, options) : world.apply(fault, options);
    },
  };
}
