/**
 * The DrillWorld of `meshfed serve`'s embedded federation. Faults strike the simulated world — its workloads, its
 * built-in east-west gateways, the static sources that stand for its clusters' API servers — and traffic comes from
 * real proxyless gRPC clients standing in its clusters (drill-client.ts). meshfed's brain (registry, topology, xDS)
 * is never told of a fault; it learns of it as it would in production. Traffic `via: dns` comes from HTTP clients
 * (http-client.ts) that resolve the virtual destination through meshfed's DNS and send through a simulated sidecar
 * of their cluster (src/sim/sidecar.ts: a real xDS client of meshfed, one per stream, closed with it). The faults:
 *
 * - drain: not a fault but an operator's act on meshfed: the matching endpoints of a virtual destination (of every
 *   one with backends in the target when none is named) are sent to clients DRAINING (FederationXds.setDrains, the
 *   rule in src/topology/virtual-destinations.ts); the workloads keep running. Restore lifts exactly that drain.
 * - kill-workloads: every running workload of the target (optionally of one service) dies; the cluster's readiness
 *   prober notices as a kubelet would and reports through its static source; clients see their connections fail.
 *   Restore starts the workloads this fault killed.
 * - kill-gateway: the cluster's built-in gateway dies (listener closed, connections destroyed); clients get refused
 *   (grpc leaves a priority whose connections are refused by itself), and meshfed's gateway probes (serve's
 *   GatewayProber) find it down after their failure threshold. Restore starts it on the same address.
 * - partition: the cluster's gateway is cut from its clients: connects hang, live connections carry nothing, calls
 *   time out (GatewayHandle.partition). meshfed's gateway probes are cut off like any other client (their
 *   ClientHello gets no answer) and so find it down, and its endpoints are withheld from other networks; nothing
 *   tells meshfed. Restore heals it.
 * - api-outage: the cluster's static source reports that its API is gone (StaticSource.fail): the registry keeps
 *   the last-known endpoints for its grace period, then evicts them. Restore brings the API back (resync).
 *
 * Targets: a cluster or a region (every cluster in it), narrowed by a zone (for kill-workloads and drain, the zone
 * of the endpoints' locality; for gateway faults and api-outage, the cluster's zone), and for kill-workloads by a
 * service (`namespace/name`, or `name` in any namespace). A target naming anything the world lacks is refused before
 * anything changes, with what there is instead.
 */
import { readFile } from 'node:fs/promises';
import type { EmbeddedGateway } from '../gateway/embedded.js';
import { SILENT_LOGGER, type Logger } from '../logging.js';
import type { NamedVirtualDestination } from '../model/virtual-destination.js';
import type { Registry } from '../registry/registry.js';
import type { StaticSource } from '../registry/static-source.js';
import type { EmbeddedFederation, SimulatedWorkload } from '../sim/embedded-federation.js';
import { endpointLocality, virtualDestinationClusters, type VirtualDestinationDrain } from '../topology/index.js';
import type { FederationXds } from '../xds/federation-provider.js';
import { startSidecar, identityFromFiles } from '../sim/sidecar.js';
import { checkTrafficSpec, DEFAULT_READY_TIMEOUT_MS, startXdsTraffic } from './drill-client.js';
import { startDnsTraffic } from './http-client.js';
import type { AppliedFault, DrillWorld, Fault, FaultTarget, RequestOutcome, Traffic, TrafficSpec, WorldCluster } from './world.js';

/** What the embedded world acts on: the parts `meshfed serve` runs. */
export interface EmbeddedWorldParts {
  /** the manager's registry: the clusters and their state */
  registry: Pick<Registry, 'list' | 'status' | 'snapshot'>;
  /** the manager's xDS provider (Manager.xds.provider): drains; none without an xDS server */
  provider: FederationXds | undefined;
  /** the static clusters' sources (Manager.staticSources): API outages */
  staticSources: ReadonlyMap<string, StaticSource>;
  /** the virtual destinations (Manager.virtualDestinations) */
  virtualDestinations: { list(): readonly NamedVirtualDestination[] };
  /** serve's built-in gateways: kill-gateway, partition */
  gateways: readonly EmbeddedGateway[];
  /** the embedded federation's workloads (kill-workloads) and demo clients' bootstraps (traffic) */
  federation: EmbeddedFederation;
  /** how long a stream's `ready()` waits for every client's first answer (default 30 s) */
  readyTimeoutMs?: number;
  /** where meshfed's xDS server is reached: `via: dns` traffic's sidecars are its xDS clients */
  xds?: { host: string; port: number };
  /** where meshfed's DNS server is reached: `via: dns` clients and sidecars resolve VIPs there */
  dns?: { host: string; port: number };
  logger?: Logger;
}

const quote = (s: string): string => JSON.stringify(s.slice(0, 200));
const listed = (names: Iterable<string>): string => [...new Set(names)].sort().join(', ') || 'none';

/** `host[:port]` → its parts */
function splitHostPort(to: string): { host: string; port?: number } {
  const match = /^(.+):(\d{1,5})$/.exec(to);
  return match ? { host: match[1] ?? '', port: Number(match[2]) } : { host: to };
}

/** where a server listening on `at` is reached from this host: a wildcard address on loopback */
function reachable(at: { host: string; port: number }): { host: string; port: number } {
  const host = at.host === '0.0.0.0' || at.host === '' ? '127.0.0.1' : at.host === '::' ? '::1' : at.host;
  return { host, port: at.port };
}

const hostPort = (at: { host: string; port: number }): string => (at.host.includes(':') ? `[${at.host}]:${String(at.port)}` : `${at.host}:${String(at.port)}`);

const zoneOf = (w: SimulatedWorkload): string => w.locality.split('/')[1] ?? '';

const targetText = (t: FaultTarget): string => [t.cluster ?? t.region, t.zone, t.service ?? t.virtualDestination].filter((p) => p !== undefined).join(' ');

/** An AppliedFault whose restore runs once, however often it is called. */
function applied(label: string, undo: () => Promise<void>): AppliedFault {
  let restoring: Promise<void> | undefined;
  return {
    label,
    restore: () => (restoring ??= undo()),
  };
}

export function embeddedWorld(parts: EmbeddedWorldParts): DrillWorld {
  const log = parts.logger ?? SILENT_LOGGER;

  const clusters = (): WorldCluster[] => parts.registry.list().map(({ name, network, region, zone }) => ({ name, network, region, zone }));

  const findVd = (hostname: string): NamedVirtualDestination | undefined => parts.virtualDestinations.list().find((vd) => vd.spec.hostname === hostname);

  /** The clusters a target names (cluster or region, narrowed by the cluster's zone when `byClusterZone`). */
  function targetClusters(kind: string, target: FaultTarget, byClusterZone: boolean): WorldCluster[] {
    const all = clusters();
    if (target.cluster === undefined && target.region === undefined) throw new Error(`${kind}: the target names no cluster and no region`);
    let chosen = all;
    if (target.cluster !== undefined) {
      const found = all.find((c) => c.name === target.cluster);
      if (!found) throw new Error(`${kind}: there is no cluster ${quote(target.cluster)} (clusters: ${listed(all.map((c) => c.name))})`);
      chosen = [found];
    }
    if (target.region !== undefined) {
      const region = target.region;
      chosen = chosen.filter((c) => c.region === region);
      if (chosen.length === 0) {
        throw new Error(
          target.cluster !== undefined
            ? `${kind}: cluster ${target.cluster} is not in region ${quote(region)}`
            : `${kind}: no cluster is in region ${quote(region)} (regions: ${listed(all.map((c) => c.region))})`,
        );
      }
    }
    if (byClusterZone && target.zone !== undefined) {
      const zone = target.zone;
      const inZone = chosen.filter((c) => c.zone === zone);
      if (inZone.length === 0) throw new Error(`${kind}: no cluster of ${targetText({ ...target, zone: undefined })} is in zone ${quote(zone)} (zones: ${listed(chosen.map((c) => c.zone))})`);
      chosen = inZone;
    }
    return chosen;
  }

  function refuse(kind: string, target: FaultTarget, fields: readonly (keyof FaultTarget)[]): void {
    for (const field of fields) if (target[field] !== undefined) throw new Error(`${kind}: a target's ${field} means nothing to ${kind}`);
  }

  /** The zones of the endpoints (and clusters) of `names`, as the topology gives them. */
  function zonesIn(names: ReadonlySet<string>): Set<string> {
    const zones = new Set<string>();
    for (const [name, view] of parts.registry.snapshot().clusters) {
      if (!names.has(name)) continue;
      zones.add(view.cluster.zone);
      for (const sv of view.services.values()) for (const ep of sv.endpoints) zones.add(endpointLocality(view.cluster, ep).zone);
    }
    return zones;
  }

  function drain(target: FaultTarget): AppliedFault {
    const provider = parts.provider;
    if (!provider) throw new Error('drain: meshfed runs no xDS server here, so there is nothing to drain');
    refuse('drain', target, ['service']);
    const chosen = new Set(targetClusters('drain', target, false).map((c) => c.name));
    if (target.zone !== undefined && !zonesIn(chosen).has(target.zone)) {
      throw new Error(`drain: nothing of ${targetText({ ...target, zone: undefined, virtualDestination: undefined })} is in zone ${quote(target.zone)} (zones: ${listed(zonesIn(chosen))})`);
    }
    const vds = parts.virtualDestinations.list();
    let names: string[];
    if (target.virtualDestination !== undefined) {
      const name = target.virtualDestination;
      if (!vds.some((vd) => vd.name === name)) throw new Error(`drain: there is no virtual destination ${quote(name)} (virtual destinations: ${listed(vds.map((vd) => vd.name))})`);
      names = [name];
    } else {
      const snapshot = parts.registry.snapshot();
      names = vds.filter((vd) => virtualDestinationClusters(snapshot, vd.spec).some((c) => chosen.has(c))).map((vd) => vd.name);
      if (names.length === 0) throw new Error(`drain: no virtual destination has backends in ${targetText(target)}`);
    }
    const rule: VirtualDestinationDrain = {
      ...(target.cluster !== undefined ? { cluster: target.cluster } : {}),
      ...(target.region !== undefined ? { region: target.region } : {}),
      ...(target.zone !== undefined ? { zone: target.zone } : {}),
    };
    const key = JSON.stringify(rule);
    for (const name of names) provider.setDrains(name, [...provider.drains(name), rule]);
    const label = `drain ${targetText({ ...target, virtualDestination: undefined })} ${names.join(',')}`;
    log.info({ fault: label }, 'drill: drain');
    return applied(label, () => {
      for (const name of names) {
        const current = [...provider.drains(name)];
        const at = current.findIndex((d) => JSON.stringify(d) === key);
        if (at !== -1) current.splice(at, 1);
        provider.setDrains(name, current);
      }
      log.info({ fault: label }, 'drill: drain lifted');
      return Promise.resolve();
    });
  }

  async function killWorkloads(target: FaultTarget): Promise<AppliedFault> {
    refuse('kill-workloads', target, ['virtualDestination']);
    const chosen = new Set(targetClusters('kill-workloads', target, false).map((c) => c.name));
    let workloads = parts.federation.workloads().filter((w) => chosen.has(w.cluster));
    const where = targetText({ ...target, zone: undefined, service: undefined });
    if (workloads.length === 0) throw new Error(`kill-workloads: the embedded federation runs no workload in ${where}`);
    if (target.zone !== undefined) {
      const zone = target.zone;
      const inZone = workloads.filter((w) => zoneOf(w) === zone);
      if (inZone.length === 0) throw new Error(`kill-workloads: no workload of ${where} is in zone ${quote(zone)} (zones: ${listed(workloads.map(zoneOf))})`);
      workloads = inZone;
    }
    if (target.service !== undefined) {
      const service = target.service;
      const ofService = workloads.filter((w) => (service.includes('/') ? `${w.namespace}/${w.service}` === service : w.service === service));
      if (ofService.length === 0) {
        throw new Error(`kill-workloads: no workload of service ${quote(service)} in ${targetText({ ...target, service: undefined })} (services: ${listed(workloads.map((w) => `${w.namespace}/${w.service}`))})`);
      }
      workloads = ofService;
    }
    const killed = workloads.filter((w) => w.running).map((w) => w.id);
    await Promise.all(killed.map((id) => parts.federation.kill(id)));
    const label = `kill-workloads ${targetText(target)}`;
    log.info({ fault: label, workloads: killed }, 'drill: workloads killed');
    return applied(label, async () => {
      await Promise.all(killed.map((id) => parts.federation.start(id)));
      log.info({ fault: label, workloads: killed }, 'drill: workloads started');
    });
  }

  function gatewaysOf(kind: string, target: FaultTarget): EmbeddedGateway[] {
    refuse(kind, target, ['service', 'virtualDestination']);
    const chosen = targetClusters(kind, target, true);
    if (target.cluster !== undefined && !parts.gateways.some((g) => g.cluster === target.cluster)) {
      throw new Error(`${kind}: meshfed runs no gateway of cluster ${target.cluster} (built-in gateways: ${listed(parts.gateways.map((g) => g.cluster))})`);
    }
    const names = new Set(chosen.map((c) => c.name));
    const gateways = parts.gateways.filter((g) => names.has(g.cluster));
    if (gateways.length === 0) throw new Error(`${kind}: meshfed runs no gateway in ${targetText(target)} (built-in gateways: ${listed(parts.gateways.map((g) => g.cluster))})`);
    return gateways;
  }

  const at = (g: EmbeddedGateway): string => `${g.cluster} ${g.handle.host}:${String(g.handle.port)}`;

  async function killGateway(target: FaultTarget): Promise<AppliedFault> {
    const gateways = gatewaysOf('kill-gateway', target);
    await Promise.all(gateways.map((g) => g.handle.close()));
    const label = `kill-gateway ${targetText(target)}`;
    log.info({ fault: label, gateways: gateways.map(at) }, 'drill: gateways killed');
    return applied(label, async () => {
      await Promise.all(gateways.map((g) => g.handle.reopen()));
      log.info({ fault: label, gateways: gateways.map(at) }, 'drill: gateways started');
    });
  }

  function partition(target: FaultTarget): AppliedFault {
    const gateways = gatewaysOf('partition', target).filter((g) => !g.handle.partitioned());
    for (const g of gateways) g.handle.partition(true);
    const label = `partition ${targetText(target)}`;
    log.info({ fault: label, gateways: gateways.map(at) }, 'drill: gateways partitioned');
    return applied(label, () => {
      for (const g of gateways) g.handle.partition(false);
      log.info({ fault: label, gateways: gateways.map(at) }, 'drill: partition healed');
      return Promise.resolve();
    });
  }

  function apiOutage(target: FaultTarget): AppliedFault {
    refuse('api-outage', target, ['service', 'virtualDestination']);
    const chosen = targetClusters('api-outage', target, true);
    const without = chosen.filter((c) => !parts.staticSources.has(c.name)).map((c) => c.name);
    if (target.cluster !== undefined && without.length > 0) {
      throw new Error(`api-outage: cluster ${target.cluster} is not a static cluster of the federation file, so its API cannot be taken away here`);
    }
    const sources = chosen.flatMap((c) => {
      const source = parts.staticSources.get(c.name);
      return source && source.outage === undefined ? [source] : [];
    });
    if (sources.length === 0 && without.length === chosen.length) throw new Error(`api-outage: no static cluster in ${targetText(target)}`);
    for (const source of sources) source.fail('API server unreachable (drill: api-outage)');
    const label = `api-outage ${targetText(target)}`;
    log.info({ fault: label, clusters: sources.map((s) => s.cluster) }, 'drill: cluster APIs gone');
    return applied(label, () => {
      for (const source of sources) source.recover();
      log.info({ fault: label, clusters: sources.map((s) => s.cluster) }, 'drill: cluster APIs back');
      return Promise.resolve();
    });
  }

  return {
    clusters,
    virtualDestination(hostname) {
      const vd = findVd(splitHostPort(hostname).host) ?? findVd(hostname);
      return vd && { name: vd.name };
    },
    async apply(fault: Fault): Promise<AppliedFault> {
      switch (fault.kind) {
        case 'drain':
          return drain(fault.target);
        case 'kill-workloads':
          return killWorkloads(fault.target);
        case 'kill-gateway':
          return killGateway(fault.target);
        case 'partition':
          return partition(fault.target);
        case 'api-outage':
          return apiOutage(fault.target);
        default: {
          const kind: never = fault.kind;
          throw new Error(`unknown fault kind ${quote(String(kind))}`);
        }
      }
    },
    async startTraffic(spec: TrafficSpec, onRequest: (outcome: RequestOutcome) => void): Promise<Traffic> {
      checkTrafficSpec(spec);
      const from = clusters().find((c) => c.name === spec.from);
      if (!from) throw new Error(`traffic ${quote(spec.name)}: there is no cluster ${quote(spec.from)} (clusters: ${listed(clusters().map((c) => c.name))})`);
      const demo = parts.federation.client(spec.from);
      if (!demo) throw new Error(`traffic ${quote(spec.name)}: no demo client stands in ${spec.from} (clusters with workloads: ${listed(parts.federation.clusters)})`);
      const { host, port } = splitHostPort(spec.to);
      const vd = findVd(host);
      if (!vd) throw new Error(`traffic ${quote(spec.name)}: no virtual destination has hostname ${quote(host)} (hostnames: ${listed(parts.virtualDestinations.list().map((v) => v.spec.hostname))})`);
      const ports = vd.spec.ports.map((p) => p.number);
      if (port !== undefined && !ports.includes(port)) throw new Error(`traffic ${quote(spec.name)}: ${host} has no port ${String(port)} (ports: ${ports.join(', ')})`);
      if (port === undefined && ports.length > 1) throw new Error(`traffic ${quote(spec.name)}: ${host} has several ports (${ports.join(', ')}): name one, as ${host}:${String(ports[0])}`);
      const readyTimeout = parts.readyTimeoutMs !== undefined ? { readyTimeoutMs: parts.readyTimeoutMs } : {};
      if (spec.via === 'dns') {
        if (!parts.dns || !parts.xds) throw new Error(`traffic ${quote(spec.name)}: via dns needs meshfed's DNS and xDS servers, and this manager runs ${!parts.dns ? 'no DNS server' : 'no xDS server'}`);
        const dns = reachable(parts.dns);
        const xds = reachable(parts.xds);
        const sidecar = await startSidecar({
          cluster: from.name,
          network: from.network,
          locality: { region: from.region, zone: from.zone, subzone: '' },
          xds: hostPort(xds),
          dns,
          identity: identityFromFiles(demo.files),
          pod: `drill-${spec.name}`,
          logger: log,
        });
        try {
          await sidecar.ready(host, parts.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS);
        } catch (error) {
          await sidecar.close();
          throw new Error(`traffic ${quote(spec.name)}: ${(error as Error).message}`, { cause: error });
        }
        log.info({ traffic: spec.name, cluster: from.name, sidecar: `${sidecar.host}:${String(sidecar.port)}` }, 'drill: sidecar started');
        return startDnsTraffic({
          spec,
          hostname: host,
          port: port ?? ports[0] ?? 0,
          dns,
          proxy: { host: sidecar.host, port: sidecar.port },
          onRequest,
          onClose: () => sidecar.close(),
          ...readyTimeout,
        });
      }
      if (demo.bootstrap === undefined) {
        throw new Error(`traffic ${quote(spec.name)}: no demo client stands in ${spec.from} (clusters with workloads and an xDS bootstrap: ${listed(parts.federation.clusters.filter((c) => parts.federation.client(c)?.bootstrap !== undefined))})`);
      }
      return startXdsTraffic({ spec, bootstrap: await readFile(demo.bootstrap, 'utf8'), onRequest, ...readyTimeout });
    },
    clusterState: (cluster) => parts.registry.status(cluster)?.state,
  };
}
