/**
 * A failover drill's spec (scenarios/*.yaml, a FailoverDrill document; the format is documented in
 * scenarios/README.md): its target, the traffic it runs, the steps it takes over time and what it expects to see.
 * The schema checks the shape, the bounds and every cross-reference (traffic and step names); what it returns is
 * normalized for the engine (durations in ms, defaults filled in). src/drills/scenario.ts parses scenario files with
 * it, and the FailoverDrill CRD is generated from it.
 */
import { z } from 'zod';
import { clusterNameSchema, dnsLabelSchema, portSchema } from './names.js';
import { vdHostnameSchema } from './virtual-destination.js';

/** A cluster's state as meshfed's registry reports it: syncing → ready → stale → evicted. */
export const FEDERATED_CLUSTER_STATES = ['syncing', 'ready', 'stale', 'evicted'] as const;
export type FederatedClusterState = (typeof FEDERATED_CLUSTER_STATES)[number];

export const MAX_DURATION_MS = 10 * 60_000;
export const MAX_TRAFFIC = 10;
export const MAX_STEPS = 50;
export const MAX_EXPECTATIONS = 100;
/** the default share of a stream's requests that must be on the new tier for a shift to count */
export const DEFAULT_SHIFT_SHARE = 0.95;

export const FAULT_KINDS = ['drain', 'kill-workloads', 'kill-gateway', 'partition', 'api-outage'] as const;
export const STEP_KINDS = [...FAULT_KINDS, 'restore'] as const;

/** cross-checks run on a value whose fields all parsed: they would only repeat or confuse the fields' own errors */
const WHEN_WELL_FORMED = { when: (payload: z.core.ParsePayload): boolean => payload.issues.length === 0 };

/** The names a time reference gives the drill's beginning and end; no step may take them. */
const RESERVED_STEP_NAMES = new Set(['start', 'end']);

const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1_000, m: 60_000 };
const DURATION = /^(\d+(\.\d+)?(ms|s|m))+$/;
const DURATION_HINT = 'must be a duration with a unit, e.g. 500ms, 10s, 1.5s or 1m30s';

/** `500ms`, `10s`, `1.5s`, `1m30s` in milliseconds; undefined when the text is not such a duration. */
export function parseDrillDuration(text: string): number | undefined {
  if (!DURATION.test(text)) return undefined;
  let total = 0;
  for (const [, amount, , unit] of text.matchAll(/(\d+(\.\d+)?)(ms|s|m)/g)) total += Number(amount) * (UNIT_MS[unit ?? ''] ?? 0);
  return Math.round(total);
}

/** 1500 → `1.5s`, 500 → `500ms`, 90000 → `1m30s`. */
export function formatDrillDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const minutes = Math.floor(ms / 60_000);
  const seconds = Math.round((ms - minutes * 60_000) / 100) / 10;
  if (minutes === 0) return `${seconds}s`;
  return seconds === 0 ? `${minutes}m` : `${minutes}m${seconds}s`;
}

/** The text of a drill duration, before it is parsed: one instance, so the CRD generator can give it its pattern. */
export const drillDurationTextSchema = z.string({ error: DURATION_HINT });

const duration = (minMs: number, maxMs: number) =>
  drillDurationTextSchema.transform((text, ctx) => {
    const ms = parseDrillDuration(text);
    if (ms === undefined) ctx.addIssue({ code: 'custom', message: DURATION_HINT });
    else if (ms < minMs || ms > maxMs) ctx.addIssue({ code: 'custom', message: `must be from ${formatDrillDuration(minMs)} to ${formatDrillDuration(maxMs)}` });
    else return ms;
    return z.NEVER;
  });

/** `hostname` or `hostname:port` of a virtual destination. */
export const destinationSchema = z.string().superRefine((value, ctx) => {
  const match = /^(.*?)(?::(\d+))?$/.exec(value);
  const host = vdHostnameSchema.safeParse(match?.[1] ?? value);
  if (!host.success) ctx.addIssue({ code: 'custom', message: `must be a virtual destination's hostname[:port]: ${host.error.issues[0]?.message ?? 'invalid'}` });
  if (match?.[2] !== undefined && !portSchema.safeParse(Number(match[2])).success) ctx.addIssue({ code: 'custom', message: 'the port must be 1-65535' });
});

/**
 * A moment of the drill: `start`, `end`, a step's name (the moment that step began) or `STEP+DURATION`
 * (`api-down+8s`: eight seconds after the step api-down began).
 */
export type TimeRef = { edge: 'start' | 'end' } | { step: string; offsetMs: number };

export const timeRefSchema = z.string().transform((text, ctx): TimeRef => {
  if (text === 'start' || text === 'end') return { edge: text };
  const [step = '', offset, ...rest] = text.split('+');
  const offsetMs = offset === undefined ? 0 : parseDrillDuration(offset);
  if (rest.length > 0 || offsetMs === undefined || !dnsLabelSchema.safeParse(step).success) {
    ctx.addIssue({ code: 'custom', message: 'must be start, end, a step name, or STEP+DURATION (e.g. api-down+8s)' });
    return z.NEVER;
  }
  return { step, offsetMs };
});

const rangeSchema = z.strictObject({ from: timeRefSchema.prefault('start'), to: timeRefSchema.prefault('end') });
export type TimeRange = z.infer<typeof rangeSchema>;

const shareSchema = z.number({ error: 'must be a number from 0 to 1' }).gt(0, 'must be more than 0').max(1, 'must be at most 1');
const clusterListSchema = z.array(clusterNameSchema).min(1, 'must name at least one cluster').max(100);

const trafficSchema = z.strictObject({
  name: dnsLabelSchema,
  /** the cluster the clients stand in */
  from: clusterNameSchema,
  /** a virtual destination, hostname[:port] */
  to: destinationSchema,
  via: z.enum(['xds', 'dns'], { error: 'must be xds (proxyless gRPC over xDS) or dns (HTTP to the VIP)' }).default('xds'),
  /** requests per second, over all the stream's clients */
  rate: z.number({ error: 'must be requests per second, 1-1000' }).min(1, 'must be at least 1 request per second').max(1000, 'must be at most 1000 requests per second'),
  clients: z.number({ error: 'must be a whole number' }).int('must be a whole number').min(1, 'must be at least 1').max(100, 'must be at most 100').default(1),
  retries: z
    .strictObject({ attempts: z.number({ error: 'must be a whole number' }).int('must be a whole number').min(1, 'must be 1-5 (1: no retry)').max(5, 'must be 1-5 (1: no retry)').default(3) })
    .default({ attempts: 3 }),
  timeout: duration(10, 60_000).prefault('2s'),
});

const targetSchema = z.strictObject({
  cluster: clusterNameSchema.optional(),
  region: z.string().min(1).max(128).optional(),
  zone: z.string().min(1).max(128).optional(),
  service: z
    .string()
    .regex(/^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\/)?[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, 'must be NAME or NAMESPACE/NAME of a service')
    .optional(),
  virtualDestination: dnsLabelSchema.optional(),
});

export const stepSchema = z
  .strictObject({
    /** when the step begins, from the drill's start */
    at: duration(0, MAX_DURATION_MS),
    /** default step-N (N counted from 1, in file order) */
    name: dnsLabelSchema.optional(),
    fault: z.enum(STEP_KINDS, { error: `must be one of ${STEP_KINDS.join(', ')}` }),
    target: targetSchema.optional(),
    /** restore only: the step whose fault to undo; without it, every fault still in effect */
    of: dnsLabelSchema.optional(),
  })
  .superRefine((step, ctx) => {
    const refuse = (field: string, why: string): void => {
      ctx.addIssue({ code: 'custom', path: field.split('.'), message: why });
    };
    if (step.fault === 'restore') {
      if (step.target) refuse('target', 'restore takes `of: STEP` (or nothing, to restore every fault), not a target');
      return;
    }
    if (step.of !== undefined) refuse('of', 'only a restore step names the step it undoes');
    const target = step.target;
    if (!target) {
      refuse('target', `${step.fault} needs a target`);
      return;
    }
    if (step.fault === 'kill-gateway' || step.fault === 'partition' || step.fault === 'api-outage') {
      if (target.cluster === undefined) refuse('target.cluster', `${step.fault} needs the cluster it strikes`);
      for (const field of ['region', 'zone', 'service', 'virtualDestination'] as const) {
        if (target[field] !== undefined) refuse(`target.${field}`, `${step.fault} strikes a whole cluster: give only target.cluster`);
      }
      return;
    }
    if (target.cluster === undefined && target.region === undefined) refuse('target', `${step.fault} needs target.cluster or target.region (with target.zone to narrow it to one zone)`);
    if (target.cluster !== undefined && target.region !== undefined) refuse('target.region', 'give target.cluster or target.region, not both');
    if (step.fault === 'drain') {
      if (target.virtualDestination === undefined) refuse('target.virtualDestination', 'drain needs the virtual destination (metadata.name) whose endpoints stop being sent');
      if (target.service !== undefined) refuse('target.service', 'drain acts on a virtual destination: use target.virtualDestination');
    } else if (target.virtualDestination !== undefined) {
      refuse('target.virtualDestination', 'only drain takes a virtual destination; kill-workloads narrows with target.service');
    }
  }, WHEN_WELL_FORMED);

const shiftSchema = z.strictObject({
  traffic: dnsLabelSchema,
  to: clusterListSchema,
  after: dnsLabelSchema,
  within: duration(1, MAX_DURATION_MS),
  share: shareSchema.default(DEFAULT_SHIFT_SHARE),
});

const failBackSchema = z.strictObject({
  traffic: dnsLabelSchema,
  /** default: the clusters that served the stream in the second before the fault the restore undoes */
  to: clusterListSchema.optional(),
  after: dnsLabelSchema,
  within: duration(1, MAX_DURATION_MS),
  share: shareSchema.default(DEFAULT_SHIFT_SHARE),
});

const maxFailedSchema = z.strictObject({
  /** default: every stream */
  traffic: dnsLabelSchema.optional(),
  count: z.number({ error: 'must be a whole number' }).int('must be a whole number').min(0, 'must be 0 or more'),
  during: rangeSchema.prefault({}),
});

const clusterStateSchema = z.strictObject({
  cluster: clusterNameSchema,
  state: z.enum(FEDERATED_CLUSTER_STATES, { error: `must be one of ${FEDERATED_CLUSTER_STATES.join(', ')}` }),
  /** default: the start */
  after: dnsLabelSchema.optional(),
  /** default: by the end of the drill */
  within: duration(1, MAX_DURATION_MS).optional(),
});

const servedBySchema = z.strictObject({
  traffic: dnsLabelSchema,
  clusters: clusterListSchema,
  between: rangeSchema.prefault({}),
  share: shareSchema.default(1),
});

const EXPECTATION_KINDS = ['shift', 'failBack', 'maxFailedRequests', 'clusterState', 'servedBy'] as const;

export type Expectation =
  | { kind: 'shift'; traffic: string; to: string[]; after: string; withinMs: number; share: number }
  | { kind: 'failBack'; traffic: string; to?: string[]; after: string; withinMs: number; share: number }
  | { kind: 'maxFailedRequests'; traffic?: string; count: number; during: TimeRange }
  | { kind: 'clusterState'; cluster: string; state: FederatedClusterState; after?: string; withinMs?: number }
  | { kind: 'servedBy'; traffic: string; clusters: string[]; between: TimeRange; share: number };

export const expectationSchema = z
  .strictObject({
    shift: shiftSchema.optional(),
    failBack: failBackSchema.optional(),
    maxFailedRequests: maxFailedSchema.optional(),
    clusterState: clusterStateSchema.optional(),
    servedBy: servedBySchema.optional(),
  })
  .transform((item, ctx): Expectation => {
    const given = EXPECTATION_KINDS.filter((kind) => item[kind] !== undefined);
    const { shift, failBack, maxFailedRequests: maxFailed, clusterState, servedBy } = item;
    if (given.length === 1) {
      if (shift) return { kind: 'shift', traffic: shift.traffic, to: shift.to, after: shift.after, withinMs: shift.within, share: shift.share };
      if (failBack) return { kind: 'failBack', traffic: failBack.traffic, ...(failBack.to ? { to: failBack.to } : {}), after: failBack.after, withinMs: failBack.within, share: failBack.share };
      if (maxFailed) return { kind: 'maxFailedRequests', ...(maxFailed.traffic !== undefined ? { traffic: maxFailed.traffic } : {}), count: maxFailed.count, during: maxFailed.during };
      if (clusterState) {
        const { cluster, state, after, within } = clusterState;
        return { kind: 'clusterState', cluster, state, ...(after !== undefined ? { after } : {}), ...(within !== undefined ? { withinMs: within } : {}) };
      }
      if (servedBy) return { kind: 'servedBy', ...servedBy };
    }
    ctx.addIssue({ code: 'custom', message: `must hold exactly one of ${EXPECTATION_KINDS.join(', ')}${given.length > 1 ? ` (it holds ${given.join(' and ')})` : ''}` });
    return z.NEVER;
  });

/** the embedded federation's grace period for clusters that lost their API (serve --grace, whole seconds) */
export const graceSchema = duration(1_000, 24 * 3_600_000).refine((ms) => ms % 1000 === 0, 'must be whole seconds (serve --grace counts in seconds)');

export const targetSpecSchema = z
  .strictObject({
    /** a federation file (relative to the scenario file), run as an embedded federation */
    federation: z.string().min(1).optional(),
    /** the embedded federation's grace period for clusters that lost their API (serve --grace, whole seconds) */
    grace: graceSchema.optional(),
    /** a running meshfed's API */
    server: z.url({ protocol: /^https?$/, error: 'must be the http(s) URL of a running meshfed' }).optional(),
  })
  .transform((target, ctx): ScenarioTarget => {
    if (target.server !== undefined && target.federation === undefined) {
      if (target.grace === undefined) return { server: target.server };
      ctx.addIssue({ code: 'custom', path: ['grace'], message: 'only an embedded federation (target.federation) takes a grace period; a running meshfed has its own (serve --grace)' });
    } else if (target.federation !== undefined && target.server === undefined) {
      return { federation: target.federation, ...(target.grace !== undefined ? { graceMs: target.grace } : {}) };
    } else {
      ctx.addIssue({ code: 'custom', message: 'must name either federation (a federation file, run embedded) or server (a running meshfed), not both' });
    }
    return z.NEVER;
  });

export type ScenarioTarget = { federation: string; graceMs?: number } | { server: string };

export const failoverDrillSpecSchema = z
  .strictObject({
    description: z.string().max(4096).optional(),
    target: targetSpecSchema.optional(),
    duration: duration(1_000, MAX_DURATION_MS),
    traffic: z.array(trafficSchema).min(1, 'must run at least one traffic stream').max(MAX_TRAFFIC, `must have at most ${MAX_TRAFFIC} streams`),
    steps: z.array(stepSchema).max(MAX_STEPS, `must have at most ${MAX_STEPS} steps`).default([]),
    expectations: z.array(expectationSchema).max(MAX_EXPECTATIONS, `must have at most ${MAX_EXPECTATIONS} expectations`).default([]),
  })
  .superRefine((spec, ctx) => {
    const issue = (path: (string | number)[], message: string): void => {
      ctx.addIssue({ code: 'custom', path, message });
    };
    const traffic = new Set<string>();
    spec.traffic.forEach((stream, i) => {
      if (traffic.has(stream.name)) issue(['traffic', i, 'name'], `traffic ${stream.name} is defined twice`);
      traffic.add(stream.name);
    });
    // step name → its index, in file order (steps run in time order, file order breaking ties)
    const steps = new Map<string, number>();
    spec.steps.forEach((step, i) => {
      const name = step.name ?? `step-${i + 1}`;
      if (RESERVED_STEP_NAMES.has(name)) issue(['steps', i, 'name'], `${name} names the drill's ${name}: choose another step name`);
      else if (steps.has(name)) issue(['steps', i, 'name'], `step ${name} is defined twice`);
      steps.set(name, i);
      if (step.at >= spec.duration) issue(['steps', i, 'at'], `must be before the end of the drill (duration ${formatDrillDuration(spec.duration)})`);
    });
    const stepAt = (name: string): { index: number; at: number; restore: boolean } | undefined => {
      const index = steps.get(name);
      const step = index === undefined ? undefined : spec.steps[index];
      return index === undefined || !step ? undefined : { index, at: step.at, restore: step.fault === 'restore' };
    };
    const known = `(steps: ${[...steps.keys()].join(', ') || 'none'})`;
    spec.steps.forEach((step, i) => {
      if (step.of === undefined) return;
      const undone = stepAt(step.of);
      if (!undone) issue(['steps', i, 'of'], `no step ${step.of} ${known}`);
      else if (undone.restore) issue(['steps', i, 'of'], `${step.of} is a restore step: name the fault step it should undo`);
      else if (undone.at > step.at || (undone.at === step.at && undone.index > i)) issue(['steps', i, 'of'], `${step.of} comes later than this restore`);
    });
    const checkTraffic = (path: (string | number)[], name: string | undefined): void => {
      if (name !== undefined && !traffic.has(name)) issue(path, `no traffic ${name} (traffic: ${[...traffic].join(', ')})`);
    };
    const checkStep = (path: (string | number)[], name: string | undefined): void => {
      if (name !== undefined && !steps.has(name)) issue(path, `no step ${name} ${known}`);
    };
    const checkRange = (path: (string | number)[], range: TimeRange): void => {
      if ('step' in range.from) checkStep([...path, 'from'], range.from.step);
      if ('step' in range.to) checkStep([...path, 'to'], range.to.step);
    };
    const checkWithin = (path: (string | number)[], within: number | undefined): void => {
      if (within !== undefined && within > spec.duration) issue(path, `must be at most the drill's duration (${formatDrillDuration(spec.duration)})`);
    };
    spec.expectations.forEach((item, i) => {
      const at = (...rest: string[]): (string | number)[] => ['expectations', i, item.kind, ...rest];
      if (item.kind === 'shift' || item.kind === 'failBack') {
        checkTraffic(at('traffic'), item.traffic);
        checkStep(at('after'), item.after);
        checkWithin(at('within'), item.withinMs);
        if (item.kind === 'failBack' && stepAt(item.after)?.restore === false) issue(at('after'), `${item.after} is not a restore step: failBack counts from a restore (use shift after a fault)`);
      } else if (item.kind === 'maxFailedRequests') {
        checkTraffic(at('traffic'), item.traffic);
        checkRange(at('during'), item.during);
      } else if (item.kind === 'clusterState') {
        checkStep(at('after'), item.after);
        checkWithin(at('within'), item.withinMs);
      } else {
        checkTraffic(at('traffic'), item.traffic);
        checkRange(at('between'), item.between);
      }
    });
  }, WHEN_WELL_FORMED);

export type FailoverDrillSpec = z.infer<typeof failoverDrillSpecSchema>;
