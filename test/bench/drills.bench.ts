/**
 * Failover drills (issue 7): how fast meshfed's clients leave what a fault took out, next to references measured in
 * the same run on the same federation.
 *
 * Setup: dist/ is built first (as test/global-setup.ts does), then one `meshfed serve` of the demo federation on this
 * bench's own loopback addresses and free gateway ports, --grace 10s (test/drills/shipped.ts), its workloads' readiness
 * probed as serve does by default (every 1 s, failureThreshold 3: the summary line is printed). Every drill is the real
 * `meshfed drill run FILE --server URL --report DIR`, one after the other; the figures are those of its DrillResult
 * (drill.json).
 *
 *   shipped     the five scenarios/*.yaml as they are. Per fault step and stream that moved or failed, the engine's
 *               figures (scenarios/README.md, "What a drill measures"): time to detect, time to shift (the start of
 *               the first 1 s window with ≥ 95 % of the requests sent in it on the new tier), failed during
 *               the shift, time to fail back. Two columns are the bench's own, from the per-second buckets (by
 *               send time, as the engine counts), to tell a shift that held from one that did not. "held from": from which whole second after the step (seconds that began at most
 *               50 ms before it) every second up to the next step had ≥ 95 % on the tier the stream ended on
 *               (its clusters with ≥ 5 % of the last whole second's answers); "failed in step": failures from the
 *               step to the next one, by whole seconds.
 *   effective   the engine's time to shift (or fail back) when the share then held (held from at most 1 s later:
 *               whole seconds), else held from: the figure the ≤ 1 s target is judged on, for the hard faults that
 *               break traffic (kill-workloads, kill-gateway, partition); api-outage keeps the endpoints for the
 *               grace period by design, drain is the gentle way, restores are fail backs.
 *   reference   what a user gets elsewhere, three ways, since no one figure stands for it honestly:
 *     same fault     drills-reference-kill.yaml: east-1's reviews killed while east-1 clients call reviews.global as
 *                    shipped (3 attempts) and, side by side, reviews-ref.global: a virtual destination applied
 *                    through the API for the run (reviews' spec, that hostname, outlier detection at Envoy's default
 *                    10 s interval, 30 s base ejection, up to 100 % ejected, failure percentage 50 % over ≥ 5 calls)
 *                    called without retries. A killed workload refuses connections, and grpc then fails over to the
 *                    next priority by itself, so this measures retries and nothing of outlier detection.
 *     readiness      the kubelet-like prober and meshfed's push, the path a control plane relying on readiness
 *                    alone takes: from the kill (same drill) until GET /api/v1/virtualdestinations/reviews says
 *                    east-1 has no healthy endpoint (polled every POLL_MS), plus the push, taken from
 *                    drain-and-failback (drain → first request answered by east-2: meshfed's EDS push reaching the
 *                    client, no prober involved).
 *     outlier only   drills-reference-partition.yaml: west-1's reviews killed, so west-1's clients cross net-east's
 *                    gateways; then east-1's gateway is partitioned: connections stay up, calls time out (1 s
 *                    deadline). Run on a second serve, on 127.0.125-127.x, with --no-gateway-probe, so that nothing
 *                    but outlier detection can move a client: reviews.global as shipped and reviews-ref.global (no
 *                    retries) side by side. The same drill on the first serve (gateway probes on, as shipped) is
 *                    meshfed's figure for that fault. The ejection comes on a tick of the 10 s
 *                    timer, whose phase the scenario's timing fixes (the timer starts with the client, just before
 *                    the drill's clock), so runs repeat much the same figure; the bench prints the range a random
 *                    phase would give. Envoy's interval-driven detection (success rate, failure percentage) and
 *                    grpc's (the only kind it runs) take this path; Envoy's consecutive_5xx (default 5) ejects on
 *                    the fifth error in a row instead, without waiting for the interval, and is not measured here
 *                    (no Envoy on this machine).
 *     tuned probes   the same partition on a third serve (127.0.129-131.x) whose gateway probes run every 250 ms,
 *                    wait 250 ms, and call a gateway down after 2 failures (TUNED_PROBES): what the probe settings
 *                    buy on a partition, at 4 probes a second per gateway instead of 1.
 *   ratios      meshfed's effective time to shift over each reference's.
 *
 * Every wait is bounded (each drill: its duration + DRILL_SLACK_MS; the API calls, the poller, the build and the
 * shutdown have limits of their own); the figures are printed, never judged by a failure. A drill that could not
 * run is reported and the bench goes on; it then ends with an error naming it.
 */
import { execFileSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { SHIFT_SHARE } from '../../src/drills/measure.js';
import type { DrillResult, DrillSecond, ShiftMeasurement } from '../../src/drills/result.js';
import { loadScenarioFile, type Scenario, type ScenarioStep } from '../../src/drills/scenario.js';
import { parseDuration } from '../../src/model/duration.js';
import { virtualDestinationSchema, type OutlierDetection } from '../../src/model/virtual-destination.js';
import { startShippedFederation, type ShippedFederation } from '../drills/shipped.js';

const ROOT = resolve(import.meta.dirname, '../..');
const SHIPPED = ['zone-outage', 'region-outage', 'gateway-loss', 'api-server-outage', 'drain-and-failback'].map((name) => join(ROOT, 'scenarios', `${name}.yaml`));
const REFERENCE_KILL = join(import.meta.dirname, 'drills-reference-kill.yaml');
const REFERENCE_PARTITION = join(import.meta.dirname, 'drills-reference-partition.yaml');
/** the federation on 127.0.121-123.x: no test uses those */
const SUBNET = 120;
const TARGET_MS = 1_000;
/** gateway probes set for a fast partition detection (down after 2 × 250 ms unanswered), at 4 probes a second per gateway */
const TUNED_PROBES = ['--gateway-probe-period', '250ms', '--gateway-probe-timeout', '250ms', '--gateway-probe-failures', '2'];
/** a cluster with less of a second's answered requests than this is a straggler, in no tier (as the engine has it) */
const TIER_MIN_SHARE = 0.05;
/** seconds that began at most this long before a step count as its own (the steps start a few ms late or early) */
const STEP_SLACK_S = 0.05;
/** how long a drill may take beyond its duration (streams getting ready, the CLI, the reports) */
const DRILL_SLACK_MS = 90_000;
const BUILD_LIMIT_MS = 180_000;
const API_LIMIT_MS = 5_000;
const CLOSE_LIMIT_MS = 30_000;
const POLL_MS = 50;
const HARD_FAULTS: ReadonlySet<string> = new Set(['kill-workloads', 'kill-gateway', 'partition']);

const REFERENCE_VD = 'reviews-ref';
const REFERENCE_HOSTNAME = 'reviews-ref.global';
const REFERENCE_OUTLIER_DETECTION: OutlierDetection = {
  interval: '10s',
  baseEjectionTime: '30s',
  maxEjectionPercent: 100,
  failurePercentage: { threshold: 50, minimumHosts: 1, requestVolume: 5 },
};

type StepKind = 'hard' | 'api' | 'gentle' | 'restore';

/** One moment of a drill: the steps that began at one scheduled time, from when they began to the next moment. */
interface Span {
  steps: string[];
  kind: StepKind;
  /** the labels of its events (faults, restores): what the engine's shift labels are made of */
  labels: Set<string>;
  /** seconds since the drill started */
  at: number;
  end: number;
}

interface Row {
  scenario: string;
  stream: string;
  step: string;
  kind: StepKind | 'unknown';
  shift: ShiftMeasurement;
  /** ms after the step from which ≥ 95 % held on the settled tier; undefined: it never held; null: not computed */
  heldFromMs: number | undefined | null;
  failedInStep: number | null;
  passed: boolean;
}

interface Drilled {
  scenario: Scenario;
  result: DrillResult;
  rows: Row[];
  spans: Span[];
}

const fmtMs = (ms: number | undefined | null): string => (ms === undefined || ms === null ? '-' : ms < 1000 ? `${String(Math.round(ms))} ms` : `${(ms / 1000).toFixed(2)} s`);
const fmtMsOrNever = (ms: number | undefined): string => (ms === undefined ? 'never' : fmtMs(ms));

function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => {
      reject(new Error(`${what}: not done within ${String(ms / 1000)} s`));
    }, ms);
  });
  return Promise.race([promise, limit]).finally(() => {
    clearTimeout(timer);
  });
}

function stepKind(steps: readonly ScenarioStep[]): StepKind {
  if (steps.every((step) => step.fault === 'restore')) return 'restore';
  if (steps.some((step) => HARD_FAULTS.has(step.fault))) return 'hard';
  return steps.some((step) => step.fault === 'api-outage') ? 'api' : 'gentle';
}

/** The drill's moments as the engine measures them: steps grouped by their scheduled time, those that ran. */
function spansOf(scenario: Scenario, result: DrillResult): Span[] {
  const marks = result.events.filter((event) => event.kind === 'fault' || event.kind === 'restore');
  const groups = new Map<number, ScenarioStep[]>();
  for (const step of scenario.steps) groups.set(step.atMs, [...(groups.get(step.atMs) ?? []), step]);
  const scheduled = [...groups].sort(([a], [b]) => a - b);
  const spans: Span[] = [];
  scheduled.forEach(([atMs, steps], i) => {
    const next = scheduled[i + 1]?.[0] ?? Infinity;
    const events = marks.filter((event) => event.t >= atMs / 1000 - STEP_SLACK_S && event.t < next / 1000 - STEP_SLACK_S);
    if (events.length === 0) return;
    spans.push({ steps: steps.map((step) => step.name), kind: stepKind(steps), labels: new Set(events.map((e) => e.label)), at: Math.min(...events.map((e) => e.t)), end: 0 });
  });
  spans.forEach((span, i) => {
    span.end = spans[i + 1]?.at ?? result.durationSeconds;
  });
  return spans;
}

const answeredIn = (second: DrillSecond): number => Object.values(second.byCluster).reduce((a, b) => a + b, 0);
const failedIn = (second: DrillSecond): number => Object.values(second.errors).reduce((a, b) => a + b, 0);

/** Failures in the span's whole seconds, and from which of them on ≥ 95 % held on the tier the stream settled on. */
function settled(seconds: readonly DrillSecond[], span: Span): { heldFromMs: number | undefined; failed: number } {
  const first = Math.ceil(span.at - STEP_SLACK_S);
  const last = Math.floor(span.end) - 1;
  let failed = 0;
  for (let s = first; s <= last; s++) failed += failedIn(seconds[s] ?? { t: s, byCluster: {}, errors: {} });
  const final = seconds[last];
  if (final === undefined || last < first) return { heldFromMs: undefined, failed };
  const answered = answeredIn(final);
  const tier = new Set(Object.entries(final.byCluster).filter(([, n]) => n >= answered * TIER_MIN_SHARE).map(([cluster]) => cluster));
  const onTier = (second: DrillSecond): boolean => {
    const total = answeredIn(second) + failedIn(second);
    const on = Object.entries(second.byCluster).reduce((sum, [cluster, n]) => sum + (tier.has(cluster) ? n : 0), 0);
    return total > 0 && on / total >= SHIFT_SHARE;
  };
  let from: number | undefined;
  for (let s = last; s >= first; s--) {
    const second = seconds[s];
    if (second === undefined || !onTier(second)) break;
    from = s;
  }
  return { heldFromMs: from === undefined ? undefined : Math.max(0, Math.round((from - span.at) * 1000)), failed };
}

function rowsOf(name: string, result: DrillResult, spans: readonly Span[]): Row[] {
  let index = 0;
  return result.shifts.map((shift) => {
    const first = shift.fault.split(' + ')[0] ?? shift.fault;
    const found = spans.findIndex((span, i) => i >= index && span.labels.has(first));
    const span = found === -1 ? undefined : spans[found];
    if (found !== -1) index = found;
    const seconds = result.streams.find((stream) => stream.name === shift.stream)?.seconds ?? [];
    const measured = span ? settled(seconds, span) : undefined;
    return {
      scenario: name,
      stream: shift.stream,
      step: span ? span.steps.join('+') : shift.fault,
      kind: span?.kind ?? 'unknown',
      shift,
      heldFromMs: measured ? measured.heldFromMs : null,
      failedInStep: measured ? measured.failed : null,
      passed: result.passed,
    };
  });
}

/**
 * The engine's time to shift (or fail back) when the share then held (checked by whole seconds, so to within 1 s),
 * else held from; undefined when the stream never settled with ≥ 95 % on its tier.
 */
function effective(row: Row): number | undefined {
  const engine = row.kind === 'restore' ? row.shift.timeToFailBackMs : row.shift.timeToShiftMs;
  if (row.heldFromMs === null) return engine;
  if (row.heldFromMs === undefined) return undefined;
  return engine !== undefined && row.heldFromMs <= engine + 1000 ? engine : row.heldFromMs;
}

async function runDrill(federation: ShippedFederation, file: string): Promise<Drilled> {
  const scenario = loadScenarioFile(file);
  const started = performance.now();
  const run = await within(federation.drill(file), scenario.durationMs + DRILL_SLACK_MS, `drill ${scenario.name}`);
  const wallSeconds = (performance.now() - started) / 1000;
  const spans = spansOf(scenario, run.result);
  const drilled = { scenario, result: run.result, spans, rows: rowsOf(scenario.name, run.result, spans) };
  console.log(`${scenario.name}: ${run.result.passed ? 'PASSED' : 'FAILED'} (exit ${String(run.code)}), ${String(run.result.durationSeconds)} s drill, ${wallSeconds.toFixed(1)} s wall`);
  return drilled;
}

async function api(federation: ShippedFederation, method: string, path: string, body?: unknown): Promise<unknown> {
  const response = await fetch(new URL(path, federation.serve.api), {
    method,
    headers: { authorization: `Bearer ${federation.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(API_LIMIT_MS),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path}: HTTP ${String(response.status)} ${text.slice(0, 300)}`);
  return text === '' ? undefined : (JSON.parse(text) as unknown);
}

const vdView = z.object({
  spec: z.unknown(),
  status: z.object({ clusters: z.array(z.object({ cluster: z.string(), endpoints: z.number(), healthy: z.number() })) }),
});

/** reviews-ref: reviews' spec with its own hostname and the reference's outlier detection. */
async function applyReference(federation: ShippedFederation): Promise<void> {
  const reviews = vdView.parse(await api(federation, 'GET', '/api/v1/virtualdestinations/reviews'));
  const spec = { ...virtualDestinationSchema.parse(reviews.spec), hostname: REFERENCE_HOSTNAME, outlierDetection: REFERENCE_OUTLIER_DETECTION };
  await api(federation, 'PUT', `/api/v1/virtualdestinations/${REFERENCE_VD}`, { apiVersion: 'meshfed.io/v1alpha1', kind: 'VirtualDestination', metadata: { name: REFERENCE_VD }, spec });
}

interface HealthSample {
  /** Date.now() when the answer arrived */
  at: number;
  healthy: number;
  endpoints: number;
}

/** Polls east-1's healthy endpoints of reviews until `stop` settles (bounded in count and time as well). */
async function pollHealth(federation: ShippedFederation, stop: Promise<unknown>, limitMs: number): Promise<HealthSample[]> {
  const samples: HealthSample[] = [];
  /** an object, so that the loop's check is not narrowed away */
  const drill = { running: true };
  const end = (): void => {
    drill.running = false;
  };
  stop.then(end, end);
  const deadline = Date.now() + limitMs;
  const maxPolls = Math.ceil(limitMs / POLL_MS);
  for (let i = 0; i < maxPolls && drill.running && Date.now() < deadline; i++) {
    const sent = Date.now();
    try {
      const view = vdView.parse(await api(federation, 'GET', '/api/v1/virtualdestinations/reviews'));
      const east1 = view.status.clusters.find((c) => c.cluster === 'east-1');
      if (east1) samples.push({ at: Date.now(), healthy: east1.healthy, endpoints: east1.endpoints });
    } catch {
      // a poll lost under load is a gap in the samples, nothing more
    }
    await new Promise((next) => setTimeout(next, Math.max(0, POLL_MS - (Date.now() - sent))));
  }
  return samples;
}

/** From a drill moment (seconds since the drill's start) until the first sample that satisfies `holds`. */
function untilSample(result: DrillResult, span: Span | undefined, samples: readonly HealthSample[], holds: (s: HealthSample) => boolean): number | undefined {
  if (!span) return undefined;
  const from = Date.parse(result.startedAt) + span.at * 1000;
  const found = samples.find((s) => s.at >= from && holds(s));
  return found ? found.at - from : undefined;
}

const pad = (text: string, width: number): string => (text.length >= width ? text : text + ' '.repeat(width - text.length));

/** Columns padded to their widest cell, under a header and a rule. */
function printColumns(head: readonly string[], cells: readonly (readonly string[])[]): void {
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] ?? '').length)));
  const line = (c: readonly string[]): string => c.map((cell, i) => pad(cell, widths[i] ?? 0)).join('  ').trimEnd();
  console.log(line(head));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const c of cells) console.log(line(c));
}

function printTable(rows: readonly Row[]): void {
  const head = ['scenario', 'stream', 'fault step', 'detect', 'shift', 'failed in shift', 'held from', 'failed in step', 'fail back', 'effective', 'scenario passed'];
  printColumns(
    head,
    rows.map((r) => [
      r.scenario,
      r.stream,
      r.step,
      fmtMs(r.shift.timeToDetectMs),
      fmtMs(r.shift.timeToShiftMs),
      String(r.shift.failedDuringShift),
      r.heldFromMs === null ? '-' : r.heldFromMs === undefined ? 'never' : fmtMs(r.heldFromMs),
      r.failedInStep === null ? '-' : String(r.failedInStep),
      fmtMs(r.shift.timeToFailBackMs),
      r.heldFromMs === null ? '-' : fmtMsOrNever(effective(r)),
      r.passed ? 'yes' : 'NO',
    ]),
  );
}

function ratio(meshfed: number | undefined, reference: number | undefined): string {
  if (meshfed === undefined) return 'meshfed never shifted';
  if (reference === undefined) return 'reference never shifted';
  if (reference === 0) return meshfed === 0 ? 'both 0 ms' : 'reference 0 ms';
  return (meshfed / reference).toFixed(3);
}

const rowOf = (drilled: Drilled | undefined, stream: string, step: string): Row | undefined => drilled?.rows.find((r) => r.stream === stream && r.step === step);

/** `reviews.global:9080 from east-1, 20 req/s, 3 attempts, 2.00 s deadline` */
function streamText(drilled: Drilled | undefined, name: string): string {
  const spec = drilled?.scenario.traffic.find((t) => t.name === name);
  if (!spec) return `${name} (did not run)`;
  return `${spec.to} from ${spec.from}, ${String(spec.rate)} req/s, ${String(spec.attempts)} attempt${spec.attempts === 1 ? '' : 's'}, ${fmtMs(spec.timeoutMs)} deadline`;
}

const rowText = (row: Row | undefined): string => (row ? `shift ${fmtMsOrNever(effective(row))}, ${row.failedInStep === null ? '-' : String(row.failedInStep)} failed in the step` : 'did not move');

export async function run(): Promise<void> {
  const benchStarted = performance.now();
  execFileSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(ROOT, 'tsconfig.build.json')], { cwd: ROOT, stdio: 'inherit', timeout: BUILD_LIMIT_MS });
  const federation = await startShippedFederation(SUBNET);
  const gatewayProbes = /gateway probes (every [^;]*)/.exec(federation.serve.stdout)?.[1] ?? '(settings not in the summary)';
  const probe = /readiness\s+(probed like a kubelet every [^:]*)/.exec(federation.serve.stdout)?.[1] ?? 'probed like a kubelet (settings not in the summary)';
  console.log(`meshfed serve of the demo federation on 127.0.${String(SUBNET + 1)}-${String(SUBNET + 3)}.x, --grace 10s; readiness ${probe}; gateway probes ${gatewayProbes}`);
  const errors: string[] = [];
  const shipped: Drilled[] = [];
  let kill: Drilled | undefined;
  /** the partition reference with meshfed's gateway probes as shipped (first serve) */
  let partitionProbed: Drilled | undefined;
  let samples: HealthSample[] = [];
  try {
    for (const file of SHIPPED) {
      try {
        shipped.push(await runDrill(federation, file));
      } catch (error) {
        errors.push(`${file}: ${(error as Error).message}`);
        console.log(`${file}: could not run: ${(error as Error).message}`);
      }
    }
    try {
      await applyReference(federation);
      const drilling = runDrill(federation, REFERENCE_KILL);
      const polling = pollHealth(federation, drilling, loadScenarioFile(REFERENCE_KILL).durationMs + DRILL_SLACK_MS);
      kill = await drilling;
      samples = await polling;
      partitionProbed = await runDrill(federation, REFERENCE_PARTITION);
    } catch (error) {
      errors.push(`reference: ${(error as Error).message}`);
      console.log(`reference: could not run: ${(error as Error).message}`);
    } finally {
      await api(federation, 'DELETE', `/api/v1/virtualdestinations/${REFERENCE_VD}`).catch(() => undefined);
    }
  } finally {
    await within(federation.close(), CLOSE_LIMIT_MS, 'stopping meshfed serve').catch((error: unknown) => {
      federation.serve.child.kill('SIGKILL');
      errors.push((error as Error).message);
    });
  }
  /** the partition reference on a serve of its own (its own addresses), started with `args` */
  const partitionOn = async (subnet: number, args: readonly string[], what: string): Promise<Drilled | undefined> => {
    try {
      const other = await startShippedFederation(subnet, args);
      try {
        await applyReference(other);
        return await runDrill(other, REFERENCE_PARTITION);
      } finally {
        await within(other.close(), CLOSE_LIMIT_MS, `stopping meshfed serve ${args.join(' ')}`).catch((error: unknown) => {
          other.serve.child.kill('SIGKILL');
          errors.push((error as Error).message);
        });
      }
    } catch (error) {
      errors.push(`reference ${what}: ${(error as Error).message}`);
      console.log(`reference ${what}: could not run: ${(error as Error).message}`);
      return undefined;
    }
  };
  // outlier detection alone: the same partition on a serve that does not probe its gateways
  const partition = await partitionOn(SUBNET + 4, ['--no-gateway-probe'], 'without gateway probes');
  // and on one whose gateway probes are tuned for speed
  const partitionTuned = await partitionOn(SUBNET + 8, TUNED_PROBES, 'with tuned gateway probes');

  console.log('\nshipped drills (scenarios/*.yaml), one federation, one after the other; times from the fault step');
  printTable(shipped.flatMap((d) => d.rows));
  for (const d of shipped) for (const e of d.result.expectations.filter((x) => !x.passed)) console.log(`  ${d.scenario.name}: FAILED ${e.name}: ${e.detail}`);

  console.log(`\nreferences, same run, same federation; ${REFERENCE_HOSTNAME}: reviews' backends and failover, outlierDetection ${JSON.stringify(REFERENCE_OUTLIER_DETECTION)}`);
  printTable([...(kill?.rows ?? []), ...(partitionProbed?.rows ?? [])]);
  console.log(`the partition again on 127.0.${String(SUBNET + 5)}-${String(SUBNET + 7)}.x, meshfed serve --no-gateway-probe (outlier detection alone):`);
  printTable(partition?.rows ?? []);

  const killMeshfed = rowOf(kill, 'meshfed', 'kill-east-1');
  const killReference = rowOf(kill, 'reference', 'kill-east-1');
  console.log('\n1. same fault, client as elsewhere (kill-workloads east-1 reviews):');
  console.log(`   meshfed    ${streamText(kill, 'meshfed')}: ${rowText(killMeshfed)}`);
  console.log(`   reference  ${streamText(kill, 'reference')}, outlier detection: ${rowText(killReference)}`);
  console.log(`   ratio meshfed / reference: ${ratio(killMeshfed && effective(killMeshfed), killReference && effective(killReference))} (grpc leaves refused connections by itself in both; outlier detection never had to act)`);

  const killSpan = kill?.spans.find((s) => s.steps.includes('kill-east-1'));
  const reviveSpan = kill?.spans.find((s) => s.steps.includes('revive-east-1'));
  const unready = kill ? untilSample(kill.result, killSpan, samples, (s) => s.healthy === 0) : undefined;
  const ready = kill ? untilSample(kill.result, reviveSpan, samples, (s) => s.healthy === s.endpoints) : undefined;
  const drain = shipped.find((d) => d.scenario.name === 'drain-and-failback')?.rows.find((r) => r.kind === 'gentle' && r.stream === 'from-east-1');
  const push = drain?.shift.timeToDetectMs;
  const readiness = unready !== undefined && push !== undefined ? unready + push : undefined;
  console.log(`\n2. readiness + push (a control plane relying on readiness alone; ${String(samples.length)} polls of the registry, every ${String(POLL_MS)} ms):`);
  console.log(`   kill → east-1's reviews unhealthy in meshfed's registry: ${fmtMsOrNever(unready)}; restore → healthy again: ${fmtMsOrNever(ready)}`);
  console.log(`   push: drain → first request answered by east-2 (drain-and-failback): ${fmtMsOrNever(push)}`);
  console.log(`   readiness + push: ${fmtMsOrNever(readiness)}`);

  const probedMeshfed = rowOf(partitionProbed, 'meshfed', 'cut-east-1');
  const odMeshfed = rowOf(partition, 'meshfed', 'cut-east-1');
  const odReference = rowOf(partition, 'reference', 'cut-east-1');
  const outlierOnly = odReference && effective(odReference);
  console.log("\n3. outlier detection alone (partition of east-1's gateway, which west-1's clients cross), on a serve with --no-gateway-probe:");
  console.log(`   meshfed    ${streamText(partition, 'meshfed')}: ${rowText(odMeshfed)}`);
  console.log(`   reference  ${streamText(partition, 'reference')}, outlier detection: ${rowText(odReference)}`);
  console.log(`   meshfed with its gateway probes (the first serve), same partition: ${rowText(probedMeshfed)}; ratio to outlier detection alone: ${ratio(probedMeshfed && effective(probedMeshfed), outlierOnly)}`);
  const tunedMeshfed = rowOf(partitionTuned, 'meshfed', 'cut-east-1');
  console.log(`   meshfed serve ${TUNED_PROBES.join(' ')} (on 127.0.${String(SUBNET + 9)}-${String(SUBNET + 11)}.x): ${rowText(tunedMeshfed)}; ratio to outlier detection alone: ${ratio(tunedMeshfed && effective(tunedMeshfed), outlierOnly)}`);
  const intervalMs = parseDuration(REFERENCE_OUTLIER_DETECTION.interval ?? '10s');
  const deadlineMs = loadScenarioFile(REFERENCE_PARTITION).traffic.find((t) => t.name === 'reference')?.timeoutMs ?? 0;
  // the first tick whose interval holds more than `threshold` % failures: failures complete from the deadline on
  const earliest = deadlineMs + ((intervalMs - deadlineMs) * (REFERENCE_OUTLIER_DETECTION.failurePercentage?.threshold ?? 0)) / 100;
  console.log(`   by send time: the calls sent up to the ${fmtMs(deadlineMs)} deadline before the ejection still fail. The ejection comes on a tick of the`);
  console.log(`   ${fmtMs(intervalMs)} timer, which starts with the reference's client, a little before the drill's clock: the scenario's timing fixes`);
  console.log(`   its phase, so runs repeat much the same figure. At a random phase it would come ${fmtMs(earliest)} to ${fmtMs(earliest + intervalMs)} after the`);
  console.log(`   partition (mean ${fmtMs(intervalMs / 2 + earliest)}), plus up to the deadline.`);

  const hard = [...shipped.flatMap((d) => d.rows), ...(kill?.rows ?? []), ...(partitionProbed?.rows ?? [])].filter((r) => r.kind === 'hard' && !(r.scenario.startsWith('reference') && r.stream === 'reference'));
  console.log(`\ntarget: hard faults shift ≥ ${String(SHIFT_SHARE * 100)} % in ≤ ${fmtMs(TARGET_MS)} with retries (meshfed's streams; effective shift)`);
  const cells = hard.map((r) => {
    const e = effective(r);
    return [r.scenario, r.stream, r.step, fmtMsOrNever(e), ratio(e, outlierOnly), ratio(e, readiness), e !== undefined && e <= TARGET_MS ? 'met' : 'NOT met'];
  });
  printColumns(['scenario', 'stream', 'fault step', 'effective', '÷ outlier only (3)', '÷ readiness+push (2)', 'target'], cells);
  const met = cells.filter((c) => c[6] === 'met').length;
  console.log(`${String(met)} of ${String(cells.length)} hard-fault shifts met the target; references: outlier only ${fmtMsOrNever(outlierOnly)}, readiness + push ${fmtMsOrNever(readiness)}`);
  const tuned = tunedMeshfed && effective(tunedMeshfed);
  console.log(`the partition with gateway probes tuned (${TUNED_PROBES.join(' ')}): ${fmtMsOrNever(tuned)}, target ${tuned !== undefined && tuned <= TARGET_MS ? 'met' : 'NOT met'}`);
  console.log(`bench wall time ${((performance.now() - benchStarted) / 1000).toFixed(0)} s`);
  if (errors.length > 0) throw new Error(`drills that could not run: ${errors.join('; ')}`);
}
