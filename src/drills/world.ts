/**
 * What a failover drill acts on and watches through: the world (for `meshfed serve`, the embedded federation, with
 * the faults of clusters watched through the Kubernetes API done through that API: kubernetes-world.ts). The engine (engine.ts) schedules faults, runs traffic and measures; a
 * world only does what it is told and reports what its clients saw. Faults happen to the world, never to meshfed's
 * brain: meshfed learns of them only as it would in production (readiness, gateway health, client errors).
 */

/** Where a fault strikes: a cluster, optionally narrowed to one zone of it and/or one service or virtual destination. */
export interface FaultTarget {
  cluster?: string;
  /** a region (every cluster in it) */
  region?: string;
  /** a zone, within `region` or `cluster` */
  zone?: string;
  /** `namespace/name` or `name` of a service: only its workloads */
  service?: string;
  /** for `drain`: the virtual destination (metadata.name) whose endpoints stop being sent */
  virtualDestination?: string;
}

export type FaultKind = 'drain' | 'kill-workloads' | 'kill-gateway' | 'partition' | 'api-outage';

export interface Fault {
  kind: FaultKind;
  target: FaultTarget;
}

/** What the operator allowed for one drill. */
export interface FaultOptions {
  /** faults that change real clusters (through their Kubernetes API) may run: `drill run --allow-disruptive` */
  allowDisruptive: boolean;
}

/** A fault in effect; `restore` undoes exactly it (idempotent). */
export interface AppliedFault {
  /** for reports: "kill-workloads east-1 reviews" */
  label: string;
  restore(): Promise<void>;
  /** it changed a real cluster: rolled back at once (as a drain is) when an expectation breaks */
  disruptive?: boolean;
}

/** One request a drill client made. */
export interface RequestOutcome {
  /** when it was sent, ms on the `performance.now()` clock */
  sentAt: number;
  latencyMs: number;
  /** the cluster that answered (from the echo reply); undefined when it failed */
  cluster?: string;
  /** why it failed: a gRPC status name (UNAVAILABLE), an errno (ECONNREFUSED), `http-503`, `timeout` */
  error?: string;
}

export interface TrafficSpec {
  name: string;
  /** the cluster the clients stand in */
  from: string;
  /** a virtual destination: hostname[:port] */
  to: string;
  via: 'xds' | 'dns';
  /** requests per second, over all the stream's clients */
  rate: number;
  /** concurrent clients (channels) */
  clients: number;
  /** attempts per request on UNAVAILABLE (1: no retry), as an xDS retry policy or the client's own */
  attempts: number;
  /** per-request deadline, ms */
  timeoutMs: number;
}

export interface Traffic {
  /** resolves once every client has its first answer (or bounded: rejects with why not) */
  ready(): Promise<void>;
  /** stops sending; resolves when the requests in flight are done */
  stop(): Promise<void>;
}

export interface WorldCluster {
  name: string;
  network: string;
  region: string;
  zone: string;
}

export interface DrillWorld {
  clusters(): WorldCluster[];
  /** the virtual destinations, by hostname, with their name */
  virtualDestination(hostname: string): { name: string } | undefined;
  /** applies a fault; throws (changing nothing) when the target names nothing this world has */
  apply(fault: Fault, options?: FaultOptions): Promise<AppliedFault>;
  /** why the fault may not run under `options` (a real cluster without --allow-disruptive...), checked before the drill starts */
  refusal?(fault: Fault, options: FaultOptions): string | undefined;
  /** starts clients; `onRequest` hears every request's outcome */
  startTraffic(spec: TrafficSpec, onRequest: (outcome: RequestOutcome) => void): Promise<Traffic>;
  /** what the registry says of a cluster now (ready, stale, evicted, ...) */
  clusterState(cluster: string): string | undefined;
}
