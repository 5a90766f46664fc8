/** The shapes of the /api/v1 answers the dashboard reads (the fields it uses), and the page's own. */

/** what h() takes as children: nested arrays are flattened; null, undefined and false leave a child out */
export type Child = Node | string | number | null | undefined | false | readonly Child[];

export interface Gateway {
  address: string;
  port: number;
}

export interface Cluster {
  name: string;
  network: string;
  region: string;
  zone: string;
  source: string;
  origin: 'api' | 'file';
  gateways: Gateway[];
  state: string;
  reason?: string;
  since: string;
  lastSync?: string;
  services: number;
  endpoints: number;
  eventsPerSecond: number;
}

export interface FailoverOrderEntry {
  cluster?: string;
  region?: string;
  zone?: string;
}

export interface VirtualDestination {
  metadata: { name: string };
  spec: {
    hostname: string;
    ports: { number: number; protocol: string; name?: string }[];
    failover: {
      policy: 'locality' | 'priority';
      regionMappings?: { from: string; to: string[] }[];
      order?: FailoverOrderEntry[];
      weights?: { cluster: string; weight: number }[];
      minHealthyPercent?: number;
    };
  };
  status: {
    source: 'file' | 'api';
    vips?: { ipv4: string; ipv6: string };
    endpoints: number;
    healthy: number;
    clusters: { cluster: string; services: string[]; endpoints: number; healthy: number }[];
    message?: string;
  };
}

export interface ExplainEndpoint {
  address: string;
  port: number;
  weight: number;
  health: string;
  via: string;
}

export interface Explanation {
  from: { cluster: string; network: string; locality: string };
  kind: 'service' | 'virtual-destination';
  name: string;
  host: string;
  port: number;
  cluster: string;
  groups: { priority: number; locality: string; weight: number; reason: string; endpoints: ExplainEndpoint[] }[];
  dropped: { cluster: string; address: string; port: number; reason: string }[];
}

export interface DrillSecond {
  t: number;
  byCluster: Record<string, number>;
  errors: Record<string, number>;
}

export interface DrillResult {
  name: string;
  scenario?: string;
  startedAt: string;
  durationSeconds: number;
  passed: boolean;
  clusters: string[];
  expectations: { name: string; passed: boolean; detail: string }[];
  shifts: { stream: string; fault: string; timeToDetectMs?: number; timeToShiftMs?: number; failedDuringShift: number; timeToFailBackMs?: number }[];
}

export interface DrillRun {
  id: string;
  name: string;
  state: 'running' | 'passed' | 'failed' | 'error';
  startedAt: string;
  passed?: boolean;
  error?: string;
  progress?: { t: number; durationSeconds: number; step?: string; streams: { name: string; second: DrillSecond }[] };
  result?: DrillResult;
}

export interface IntermediateStatus {
  cluster: string;
  serial?: string;
  rootId?: string;
  notBefore?: string;
  notAfter?: string;
  renewAfter?: string;
  pendingCsr: boolean;
  delivered: boolean;
}

export interface Trust {
  trustDomain: string;
  bundleSequence: number;
  activeRootId: string;
  roots: { id: string; subject: string; serial: string; notBefore: string; notAfter: string; active: boolean; offline: boolean }[];
  intermediates: IntermediateStatus[];
  rotation: { phase: string; oldRootId?: string; newRootId?: string; bundleSequence: number; steps: { step: string; done: boolean; waitingFor: string[] }[]; next: string };
}

export interface ApiErrorBody {
  error?: { code?: string; message?: string };
}
