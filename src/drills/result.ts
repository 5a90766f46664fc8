/**
 * What a failover drill measured, as its reports (JSON, JUnit XML, HTML) and the API carry it. The drill engine
 * fills it in; the reports only render it.
 */

/** One second of one traffic stream. */
export interface DrillSecond {
  /** seconds since the drill started (0, 1, 2, ...) */
  t: number;
  /** requests answered in that second, by the cluster that served them */
  byCluster: Record<string, number>;
  /** requests that failed in that second, by kind (e.g. UNAVAILABLE, DEADLINE_EXCEEDED, ECONNREFUSED, http-503) */
  errors: Record<string, number>;
  /** latency of the answered requests, in milliseconds; absent when none was answered */
  p50Ms?: number;
  p99Ms?: number;
}

/** A client population the drill ran: where it stands and what it calls. */
export interface DrillStream {
  name: string;
  /** the cluster the clients stand in */
  from: string;
  /** the virtual destination (hostname[:port]) */
  to: string;
  /** how the clients reach it: proxyless gRPC over xDS, or HTTP to the VIP meshfed's DNS gives */
  via: 'xds' | 'dns';
  seconds: DrillSecond[];
}

/** A fault, a restore, a rollback or a broken expectation, where it happened on the timeline. */
export interface DrillEvent {
  /** seconds since the drill started (fractional) */
  t: number;
  kind: 'fault' | 'restore' | 'rollback' | 'expectation-failed';
  /** what people read on the chart: "kill-workloads east-1 reviews" */
  label: string;
}

/** One expectation of the scenario and what came of it. */
export interface ExpectationResult {
  /** what it expected, in words */
  name: string;
  passed: boolean;
  /** what was measured against it */
  detail: string;
}

/** What a fault's shift took, per stream. Times in milliseconds from the fault. */
export interface ShiftMeasurement {
  stream: string;
  /** the step that caused it */
  fault: string;
  /** until the first request served by the new tier (or the first failure, whichever came first) */
  timeToDetectMs?: number;
  /** until ≥ 95% of the stream's traffic in a second was on the new tier */
  timeToShiftMs?: number;
  /** requests that failed between the fault and the shift */
  failedDuringShift: number;
  /** for a restore: until ≥ 95% was back on the first tier */
  timeToFailBackMs?: number;
}

export interface DrillResult {
  /** the scenario's name (metadata.name) */
  name: string;
  /** its file, when it came from one */
  scenario?: string;
  startedAt: string;
  durationSeconds: number;
  /** every expectation held */
  passed: boolean;
  /** every cluster that served traffic or was a fault's target, sorted: the legend of the charts */
  clusters: string[];
  streams: DrillStream[];
  events: DrillEvent[];
  expectations: ExpectationResult[];
  shifts: ShiftMeasurement[];
}
