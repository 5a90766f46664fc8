/**
 * Scenario files as their authors write them: the shipped scenarios and the README's examples parse and name only
 * what the demo federation has; defaults and durations come out as documented; every mistake is refused with the
 * file, the document and the field.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkScenarioAgainstWorld } from '../../src/drills/engine.js';
import { loadScenarioFile, parseDrillDuration, parseScenario, ScenarioError, type Scenario } from '../../src/drills/scenario.js';
import type { DrillWorld } from '../../src/drills/world.js';
import { loadFederationFile } from '../../src/store/federation.js';

const ROOT = resolve(import.meta.dirname, '../..');
const SCENARIOS = join(ROOT, 'scenarios');
const SHIPPED = readdirSync(SCENARIOS)
  .filter((file) => file.endsWith('.yaml'))
  .sort();

const HEAD = `apiVersion: meshfed.io/v1alpha1
kind: FailoverDrill
metadata: { name: drill }
`;

/** A valid scenario whose spec has `replace` applied to it (or `extra` appended). */
const BASE_SPEC = `spec:
  duration: 30s
  traffic:
    - { name: a, from: east-1, to: reviews.global:9080, rate: 20 }
  steps:
    - { at: 5s, name: kill, fault: kill-workloads, target: { cluster: east-1 } }
    - { at: 15s, name: back, fault: restore, of: kill }
  expectations:
    - shift: { traffic: a, to: [east-2], after: kill, within: 5s }
`;

function errorOf(text: string): string {
  try {
    parseScenario(text, 'drill.yaml');
  } catch (error) {
    expect(error).toBeInstanceOf(ScenarioError);
    return (error as Error).message;
  }
  throw new Error('expected the scenario to be refused');
}

/** A world that is the demo federation as the federation file has it, for checking names only. */
function demoWorld(path: string): DrillWorld {
  const federation = loadFederationFile(path);
  return {
    clusters: () => federation.clusters.map(({ cluster }) => ({ name: cluster.name, network: cluster.network, region: cluster.region, zone: cluster.zone })),
    virtualDestination: (hostname) => federation.virtualDestinations.find((vd) => vd.spec.hostname === hostname),
    apply: () => Promise.reject(new Error('not for running')),
    startTraffic: () => Promise.reject(new Error('not for running')),
    clusterState: () => undefined,
  };
}

describe('shipped scenarios', () => {
  it('are the five the issue asks for, and the HTTP-via-DNS one', () => {
    expect(SHIPPED).toEqual(['api-server-outage.yaml', 'drain-and-failback.yaml', 'gateway-loss.yaml', 'ratings-outage-http.yaml', 'region-outage.yaml', 'zone-outage.yaml']);
  });

  it.each(SHIPPED)('%s parses, is named after its file, and names only what the demo federation has', (file) => {
    const path = join(SCENARIOS, file);
    const scenario = loadScenarioFile(path);
    expect(scenario.name).toBe(file.replace(/\.yaml$/, ''));
    expect(scenario.source).toBe(path);
    expect(scenario.target).toMatchObject({ federation: '../federation/demo.yaml' });
    const federation = resolve(dirname(path), (scenario.target as { federation: string }).federation);
    const world = demoWorld(federation);
    expect(() => {
      checkScenarioAgainstWorld(scenario, world);
    }).not.toThrow();
    // drains name a virtual destination of the federation by its metadata.name
    for (const step of scenario.steps) {
      if (step.fault === 'drain') expect(loadFederationFile(federation).virtualDestinations.map((vd) => vd.name)).toContain(step.target.virtualDestination);
    }
    // every fault is undone by a restore within the drill, and each expectation has room to be judged
    expect(scenario.steps.some((step) => step.fault === 'restore')).toBe(true);
    for (const expectation of scenario.expectations) {
      if (expectation.kind !== 'shift' && expectation.kind !== 'failBack') continue;
      const after = scenario.steps.find((step) => step.name === expectation.after);
      expect((after?.atMs ?? Infinity) + expectation.withinMs + 1000).toBeLessThanOrEqual(scenario.durationMs);
    }
  });

  it('the API-server outage runs with a grace period shorter than the time it watches', () => {
    const scenario = loadScenarioFile(join(SCENARIOS, 'api-server-outage.yaml'));
    expect(scenario.target).toEqual({ federation: '../federation/demo.yaml', graceMs: 10_000 });
    expect(scenario.expectations.map((e) => e.kind)).toEqual(['clusterState', 'servedBy', 'clusterState', 'shift', 'clusterState', 'failBack']);
  });
});

describe('scenarios/README.md', () => {
  const readme = readFileSync(join(SCENARIOS, 'README.md'), 'utf8');
  const blocks = [...readme.matchAll(/```yaml\n([\s\S]*?)```/g)].map((match) => match[1] ?? '');

  it('has a complete example that parses as documented', () => {
    const full = blocks.filter((block) => block.startsWith('apiVersion:'));
    expect(full).toHaveLength(1);
    const scenario = parseScenario(full[0] ?? '', 'README.md');
    expect(scenario.traffic[0]).toEqual({ name: 'from-east-1', from: 'east-1', to: 'reviews.global:9080', via: 'xds', rate: 50, clients: 2, attempts: 3, timeoutMs: 2000 });
    expect(scenario.expectations.map((e) => e.kind)).toEqual(['shift', 'maxFailedRequests', 'servedBy', 'failBack', 'clusterState', 'servedBy', 'maxFailedRequests']);
  });

  it('has an example of every fault, and each is a valid list of steps', () => {
    const faults = new Set<string>();
    for (const block of blocks.filter((b) => b.startsWith('steps:'))) {
      const scenario = parseScenario(`${HEAD}spec:\n  duration: 60s\n  traffic: [{ name: a, from: east-1, to: reviews.global, rate: 10 }]\n${block.replace(/^/gm, '  ')}`, 'README.md');
      for (const step of scenario.steps) faults.add(step.fault);
    }
    expect([...faults].sort()).toEqual(['api-outage', 'drain', 'kill-gateway', 'kill-workloads', 'partition', 'restore']);
  });
});

describe('parseScenario', () => {
  it('fills in the documented defaults and orders the steps by time', () => {
    const scenario: Scenario = parseScenario(
      `${HEAD}spec:
  duration: 1m30s
  traffic:
    - { name: a, from: east-1, to: reviews.global, rate: 5 }
  steps:
    - { at: 20s, fault: restore }
    - { at: 1500ms, fault: kill-gateway, target: { cluster: west-1 } }
    - { at: 1500ms, fault: partition, target: { cluster: east-2 } }
  expectations:
    - shift: { traffic: a, to: [east-2], after: step-2, within: 5s }
    - maxFailedRequests: { count: 0 }
    - servedBy: { traffic: a, clusters: [east-1], between: { to: step-2+500ms } }
`,
    );
    expect(scenario).toEqual({
      name: 'drill',
      durationMs: 90_000,
      traffic: [{ name: 'a', from: 'east-1', to: 'reviews.global', via: 'xds', rate: 5, clients: 1, attempts: 3, timeoutMs: 2_000 }],
      steps: [
        { name: 'step-2', atMs: 1_500, fault: 'kill-gateway', target: { cluster: 'west-1' } },
        { name: 'step-3', atMs: 1_500, fault: 'partition', target: { cluster: 'east-2' } },
        { name: 'step-1', atMs: 20_000, fault: 'restore' },
      ],
      expectations: [
        { kind: 'shift', traffic: 'a', to: ['east-2'], after: 'step-2', withinMs: 5_000, share: 0.95 },
        { kind: 'maxFailedRequests', count: 0, during: { from: { edge: 'start' }, to: { edge: 'end' } } },
        { kind: 'servedBy', traffic: 'a', clusters: ['east-1'], between: { from: { edge: 'start' }, to: { step: 'step-2', offsetMs: 500 } }, share: 1 },
      ],
    });
  });

  it('reads durations with units and refuses the rest', () => {
    expect(['500ms', '10s', '1.5s', '2m', '1m30s', '0s'].map(parseDrillDuration)).toEqual([500, 10_000, 1_500, 120_000, 90_000, 0]);
    for (const bad of ['10', '10 s', '1h', '-5s', 's', '1.s', '']) expect(parseDrillDuration(bad)).toBeUndefined();
  });

  it('accepts a running meshfed as the target', () => {
    expect(parseScenario(`${HEAD}${BASE_SPEC}  target: { server: 'https://meshfed.example:8443' }\n`).target).toEqual({ server: 'https://meshfed.example:8443' });
  });

  const refused: [string, string, string][] = [
    ['an unknown field', BASE_SPEC.replace('  duration:', '  durration: 30s\n  duration:'), 'drill.yaml, document 1 (FailoverDrill drill): spec.durration: unknown field'],
    ['an unknown field in a step target', BASE_SPEC.replace('target: { cluster: east-1 }', 'target: { cluster: east-1, node: n1 }'), 'spec.steps[0].target.node: unknown field'],
    ['a duration without a unit', BASE_SPEC.replace('duration: 30s', 'duration: 30'), 'spec.duration: must be a duration with a unit, e.g. 500ms, 10s, 1.5s or 1m30s'],
    ['a drill longer than ten minutes', BASE_SPEC.replace('duration: 30s', 'duration: 11m'), 'spec.duration: must be from 1s to 10m'],
    ['no traffic', BASE_SPEC.replace(/ {2}traffic:\n.*\n/, '  traffic: []\n'), 'spec.traffic: must run at least one traffic stream'],
    ['a rate out of bounds', BASE_SPEC.replace('rate: 20', 'rate: 5000'), 'spec.traffic[0].rate: must be at most 1000 requests per second'],
    ['a rate that is not a number', BASE_SPEC.replace('rate: 20', 'rate: fast'), 'spec.traffic[0].rate: must be requests per second, 1-1000'],
    ['a destination that is no hostname', BASE_SPEC.replace('reviews.global:9080', 'reviews:99999'), 'spec.traffic[0].to: must be a virtual destination\'s hostname[:port]: must have at least two labels'],
    ['a destination port out of range', BASE_SPEC.replace('reviews.global:9080', 'reviews.global:99999'), 'spec.traffic[0].to: the port must be 1-65535'],
    ['an unknown way to call', BASE_SPEC.replace('rate: 20', 'rate: 20, via: http'), 'spec.traffic[0].via: must be xds (proxyless gRPC over xDS) or dns (HTTP to the VIP)'],
    ['too many attempts', BASE_SPEC.replace('rate: 20', 'rate: 20, retries: { attempts: 9 }'), 'spec.traffic[0].retries.attempts: must be 1-5 (1: no retry)'],
    ['two streams with one name', BASE_SPEC.replace('  steps:', '    - { name: a, from: east-2, to: reviews.global, rate: 1 }\n  steps:'), 'spec.traffic[1].name: traffic a is defined twice'],
    ['an unknown fault', BASE_SPEC.replace('fault: kill-workloads', 'fault: kill-cluster'), 'spec.steps[0].fault: must be one of drain, kill-workloads, kill-gateway, partition, api-outage, restore'],
    ['a step after the end', BASE_SPEC.replace('at: 15s', 'at: 30s'), 'spec.steps[1].at: must be before the end of the drill (duration 30s)'],
    ['a fault without a target', BASE_SPEC.replace(', target: { cluster: east-1 }', ''), 'spec.steps[0].target: kill-workloads needs a target'],
    ['kill-workloads without a cluster or region', BASE_SPEC.replace('target: { cluster: east-1 }', 'target: { service: reviews }'), 'spec.steps[0].target: kill-workloads needs target.cluster or target.region'],
    ['both a cluster and a region', BASE_SPEC.replace('target: { cluster: east-1 }', 'target: { cluster: east-1, region: us-east }'), 'spec.steps[0].target.region: give target.cluster or target.region, not both'],
    ['a drain without a virtual destination', BASE_SPEC.replace('fault: kill-workloads', 'fault: drain'), 'spec.steps[0].target.virtualDestination: drain needs the virtual destination (metadata.name) whose endpoints stop being sent'],
    ['a drain of a service', BASE_SPEC.replace('fault: kill-workloads, target: { cluster: east-1 }', 'fault: drain, target: { cluster: east-1, virtualDestination: reviews, service: reviews }'), 'spec.steps[0].target.service: drain acts on a virtual destination: use target.virtualDestination'],
    ['a kill narrowed by a virtual destination', BASE_SPEC.replace('target: { cluster: east-1 }', 'target: { cluster: east-1, virtualDestination: reviews }'), 'spec.steps[0].target.virtualDestination: only drain takes a virtual destination'],
    ['a gateway kill of a region', BASE_SPEC.replace('fault: kill-workloads, target: { cluster: east-1 }', 'fault: kill-gateway, target: { region: us-east }'), 'spec.steps[0].target.cluster: kill-gateway needs the cluster it strikes; spec.steps[0].target.region: kill-gateway strikes a whole cluster: give only target.cluster'],
    ['a partition of a zone', BASE_SPEC.replace('fault: kill-workloads, target: { cluster: east-1 }', 'fault: partition, target: { cluster: east-1, zone: us-east-1a }'), 'spec.steps[0].target.zone: partition strikes a whole cluster'],
    ['a restore with a target', BASE_SPEC.replace('of: kill', 'target: { cluster: east-1 }'), 'spec.steps[1].target: restore takes `of: STEP` (or nothing, to restore every fault), not a target'],
    ['a fault with of', BASE_SPEC.replace('target: { cluster: east-1 }', 'target: { cluster: east-1 }, of: back'), 'spec.steps[0].of: only a restore step names the step it undoes'],
    ['a restore of an unknown step', BASE_SPEC.replace('of: kill', 'of: kil'), 'spec.steps[1].of: no step kil (steps: kill, back)'],
    ['a restore of a later step', BASE_SPEC.replace('at: 5s', 'at: 20s'), 'spec.steps[1].of: kill comes later than this restore'],
    ['a restore of a restore', BASE_SPEC.replace('  expectations:', '    - { at: 20s, fault: restore, of: back }\n  expectations:'), 'spec.steps[2].of: back is a restore step: name the fault step it should undo'],
    ['two steps with one name', BASE_SPEC.replace('name: back', 'name: kill'), 'spec.steps[1].name: step kill is defined twice'],
    ['a step named end', BASE_SPEC.replace('name: back', 'name: end').replace('of: kill', 'of: kill'), "spec.steps[1].name: end names the drill's end: choose another step name"],
    ['an expectation of no kind', BASE_SPEC.replace(/ {4}- shift: .*\n/, '    - {}\n'), 'spec.expectations[0]: must hold exactly one of shift, failBack, maxFailedRequests, clusterState, servedBy'],
    ['an expectation of two kinds', BASE_SPEC.replace('within: 5s }', 'within: 5s }\n      maxFailedRequests: { count: 1 }'), 'spec.expectations[0]: must hold exactly one of shift, failBack, maxFailedRequests, clusterState, servedBy (it holds shift and maxFailedRequests)'],
    ['an expectation of an unknown kind', BASE_SPEC.replace('shift:', 'shfit:'), 'spec.expectations[0].shfit: unknown field'],
    ['an expectation on unknown traffic', BASE_SPEC.replace('traffic: a,', 'traffic: b,'), 'spec.expectations[0].shift.traffic: no traffic b (traffic: a)'],
    ['an expectation after an unknown step', BASE_SPEC.replace('after: kill', 'after: kil'), 'spec.expectations[0].shift.after: no step kil (steps: kill, back)'],
    ['a shift given longer than the drill', BASE_SPEC.replace('within: 5s', 'within: 1m'), "spec.expectations[0].shift.within: must be at most the drill's duration (30s)"],
    ['a share above 1', BASE_SPEC.replace('within: 5s', 'within: 5s, share: 95'), 'spec.expectations[0].shift.share: must be at most 1'],
    ['a fail back from a fault', BASE_SPEC.replace('shift: { traffic: a, to: [east-2], after: kill', 'failBack: { traffic: a, after: kill'), 'spec.expectations[0].failBack.after: kill is not a restore step'],
    ['a range from an unknown step', BASE_SPEC.replace(/ {4}- shift: .*\n/, '    - maxFailedRequests: { count: 0, during: { from: kil+2s } }\n'), 'spec.expectations[0].maxFailedRequests.during.from: no step kil (steps: kill, back)'],
    ['a malformed moment', BASE_SPEC.replace(/ {4}- shift: .*\n/, '    - servedBy: { traffic: a, clusters: [east-1], between: { to: kill+2 } }\n'), 'spec.expectations[0].servedBy.between.to: must be start, end, a step name, or STEP+DURATION (e.g. api-down+8s)'],
    ['an unknown cluster state', BASE_SPEC.replace(/ {4}- shift: .*\n/, '    - clusterState: { cluster: east-1, state: down }\n'), 'spec.expectations[0].clusterState.state: must be one of syncing, ready, stale, evicted'],
    ['a negative count', BASE_SPEC.replace(/ {4}- shift: .*\n/, '    - maxFailedRequests: { count: -1 }\n'), 'spec.expectations[0].maxFailedRequests.count: must be 0 or more'],
    ['a target that is both', `${BASE_SPEC}  target: { federation: demo.yaml, server: 'http://localhost:8080' }\n`, 'spec.target: must name either federation (a federation file, run embedded) or server (a running meshfed), not both'],
    ['a grace period for a running meshfed', `${BASE_SPEC}  target: { server: 'http://localhost:8080', grace: 5s }\n`, 'spec.target.grace: only an embedded federation (target.federation) takes a grace period'],
    ['a grace period of a fraction of a second', `${BASE_SPEC}  target: { federation: demo.yaml, grace: 1500ms }\n`, 'spec.target.grace: must be whole seconds (serve --grace counts in seconds)'],
    ['a server that is no URL', `${BASE_SPEC}  target: { server: localhost }\n`, 'spec.target.server: must be the http(s) URL of a running meshfed'],
  ];

  it.each(refused)('refuses %s, naming the field', (_what, spec, expected) => {
    expect(errorOf(`${HEAD}${spec}`)).toContain(expected);
  });

  it('names the document, its kind and name for document-level mistakes', () => {
    expect(errorOf(`${HEAD.replace('FailoverDrill', 'Drill')}${BASE_SPEC}`)).toBe('drill.yaml, document 1 (FailoverDrill drill): kind: must be FailoverDrill');
    expect(errorOf(`${HEAD.replace('v1alpha1', 'v1')}${BASE_SPEC}`)).toBe('drill.yaml, document 1 (FailoverDrill drill): apiVersion: must be meshfed.io/v1alpha1');
    expect(errorOf(`${HEAD}${BASE_SPEC}---\n${HEAD}${BASE_SPEC}`)).toBe('drill.yaml, document 2: a scenario file holds one FailoverDrill document (put each drill in its own file)');
    expect(errorOf(`# nothing here\n`)).toBe('drill.yaml: no FailoverDrill document');
    expect(errorOf(`${HEAD}spec:\n  duration: [30s\n`)).toMatch(/^drill\.yaml, document 1: invalid YAML at line 6, column \d+: /);
    expect(errorOf(`${HEAD.replace('{ name: drill }', '{ name: Drill_1 }')}${BASE_SPEC}`)).toContain('(FailoverDrill Drill_1): metadata.name: must be a DNS-1123 label');
  });

  it('reports every problem of a document at once', () => {
    const message = errorOf(`${HEAD}${BASE_SPEC.replace('rate: 20', 'rate: 0').replace('duration: 30s', 'duration: 30')}`);
    expect(message).toContain('spec.duration: must be a duration');
    expect(message).toContain('spec.traffic[0].rate: must be at least 1 request per second');
  });

  it('refuses a file it cannot read, naming it', () => {
    expect(() => loadScenarioFile(join(SCENARIOS, 'no-such-drill.yaml'))).toThrow(/no-such-drill\.yaml: cannot read: ENOENT/);
  });
});
