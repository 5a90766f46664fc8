/**
 * Failover drill scenarios (scenarios/*.yaml; the format is documented in scenarios/README.md): a FailoverDrill
 * document names its target, the traffic it runs, the steps it takes over time and what it expects to see. Parsing
 * checks the shape, the bounds and every cross-reference (traffic and step names), and names the document and
 * field of the first problems; what it returns is normalized for the engine (durations in ms, defaults filled in).
 */
import { readFileSync } from 'node:fs';
import { parseAllDocuments, type Document } from 'yaml';
import { z } from 'zod';
import { failoverDrillSpecSchema, type Expectation, type ScenarioTarget } from '../model/failover-drill.js';
import { API_VERSION } from '../model/federation-file.js';
import { dnsLabelSchema, labelsSchema } from '../model/names.js';
import type { FaultKind, FaultTarget, TrafficSpec } from './world.js';

export {
  DEFAULT_SHIFT_SHARE,
  FAULT_KINDS,
  MAX_DURATION_MS,
  MAX_EXPECTATIONS,
  MAX_STEPS,
  MAX_TRAFFIC,
  STEP_KINDS,
  formatDrillDuration,
  parseDrillDuration,
  type Expectation,
  type ScenarioTarget,
  type TimeRange,
  type TimeRef,
} from '../model/failover-drill.js';

export const SCENARIO_KIND = 'FailoverDrill';
const MAX_FILE_BYTES = 1024 * 1024;

const documentSchema = z.strictObject({
  apiVersion: z.literal(API_VERSION, { error: `must be ${API_VERSION}` }),
  kind: z.literal(SCENARIO_KIND, { error: `must be ${SCENARIO_KIND}` }),
  metadata: z.strictObject({
    name: dnsLabelSchema,
    labels: labelsSchema.optional(),
    annotations: z.record(z.string(), z.string()).optional(),
  }),
  spec: failoverDrillSpecSchema,
});

export type ScenarioStep = {
  name: string;
  /** ms from the drill's start */
  atMs: number;
} & ({ fault: FaultKind; target: FaultTarget } | { fault: 'restore'; /** the step it undoes; absent: every fault still in effect */ of?: string });

export interface Scenario {
  name: string;
  /** the file it came from, when it came from one */
  source?: string;
  description?: string;
  target?: ScenarioTarget;
  durationMs: number;
  traffic: TrafficSpec[];
  /** in the order they run: by time, then file order */
  steps: ScenarioStep[];
  expectations: Expectation[];
}

export class ScenarioError extends Error {}

const formatPath = (path: readonly PropertyKey[]): string => path.map((part) => (typeof part === 'number' ? `[${part}]` : `.${String(part)}`)).join('').replace(/^\./, '');

function describeIssue(issue: z.core.$ZodIssue): string {
  // an unknown key is reported on its parent: name the key itself, so the path points at the typo
  if (issue.code === 'unrecognized_keys') return issue.keys.map((key) => `${formatPath([...issue.path, key])}: unknown field`).join('; ');
  return `${formatPath(issue.path) || '(document)'}: ${issue.message}`;
}

function toValue(document: Document.Parsed, where: string): unknown {
  try {
    return document.toJS({ maxAliasCount: 100 });
  } catch (error) {
    throw new ScenarioError(`${where}: invalid YAML: ${error instanceof Error ? error.message : String(error)}`);
  }
}

function normalize(doc: z.infer<typeof documentSchema>, source: string | undefined): Scenario {
  const { spec } = doc;
  const steps = spec.steps
    .map((step, index): { index: number; step: ScenarioStep } => {
      const name = step.name ?? `step-${index + 1}`;
      // the schema gave every fault step a target
      if (step.fault !== 'restore') return { index, step: { name, atMs: step.at, fault: step.fault, target: step.target ?? {} } };
      return { index, step: { name, atMs: step.at, fault: 'restore', ...(step.of !== undefined ? { of: step.of } : {}) } };
    })
    .sort((a, b) => a.step.atMs - b.step.atMs || a.index - b.index)
    .map(({ step }) => step);
  return {
    name: doc.metadata.name,
    ...(source !== undefined ? { source } : {}),
    ...(spec.description !== undefined ? { description: spec.description } : {}),
    ...(spec.target ? { target: spec.target } : {}),
    durationMs: spec.duration,
    traffic: spec.traffic.map((stream) => ({
      name: stream.name,
      from: stream.from,
      to: stream.to,
      via: stream.via,
      rate: stream.rate,
      clients: stream.clients,
      attempts: stream.retries.attempts,
      timeoutMs: stream.timeout,
    })),
    steps,
    expectations: spec.expectations,
  };
}

/** Parses a scenario file: one FailoverDrill document. `sourceName` names it in errors (and becomes `source`). */
export function parseScenario(text: string, sourceName?: string): Scenario {
  const label = sourceName ?? 'scenario';
  if (Buffer.byteLength(text) > MAX_FILE_BYTES) throw new ScenarioError(`${label}: larger than ${MAX_FILE_BYTES} bytes`);
  const documents = parseAllDocuments(text);
  let found: { value: unknown; where: string } | undefined;
  let index = 0;
  for (const document of Array.isArray(documents) ? documents : [documents]) {
    index++;
    const where = `${label}, document ${index}`;
    const [yamlError] = document.errors;
    if (yamlError) {
      const position = yamlError.linePos?.[0];
      const message = (yamlError.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '');
      throw new ScenarioError(`${where}: invalid YAML at line ${position?.line ?? '?'}, column ${position?.col ?? '?'}: ${message}`);
    }
    const value = toValue(document, where);
    if (value === null || value === undefined) continue;
    if (found) throw new ScenarioError(`${where}: a scenario file holds one ${SCENARIO_KIND} document (put each drill in its own file)`);
    found = { value, where };
  }
  if (!found) throw new ScenarioError(`${label}: no ${SCENARIO_KIND} document`);
  const { value, where } = found;
  const parsed = documentSchema.safeParse(value);
  if (!parsed.success) {
    const metadata = typeof value === 'object' && value !== null && 'metadata' in value ? value.metadata : undefined;
    const name = typeof metadata === 'object' && metadata !== null && 'name' in metadata ? ` ${String(metadata.name)}` : '';
    throw new ScenarioError(`${where} (${SCENARIO_KIND}${name}): ${parsed.error.issues.map(describeIssue).join('; ')}`);
  }
  return normalize(parsed.data, sourceName);
}

/** Reads and parses a scenario file. */
export function loadScenarioFile(path: string): Scenario {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ScenarioError(`${path}: cannot read: ${error instanceof Error ? error.message : String(error)}`);
  }
  return parseScenario(text, path);
}
