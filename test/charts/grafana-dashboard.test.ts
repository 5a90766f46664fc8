/**
 * charts/meshfed/dashboards/meshfed.json, the Grafana dashboard: a Grafana JSON model on a Prometheus datasource
 * variable, with the panels the issue names, whose every metric a real `meshfed serve` (a federation with a built-in
 * gateway, DNS and the CA service) exports on /metrics — and whose certificate-expiry series say what the trust API says.
 */
import type { ChildProcessByStdio } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TrustInfo } from '../../src/api/trust.js';
import { startServe, type Serve } from '../cli/meshfed-bin.js';
import { freePort } from '../sim/helpers.js';

const ROOT = resolve(import.meta.dirname, '../..');
const DASHBOARD = join(ROOT, 'charts/meshfed/dashboards/meshfed.json');

interface Target {
  expr: string;
  datasource: { type: string; uid: string };
}
interface Panel {
  title: string;
  type: string;
  datasource: { type: string; uid: string };
  targets: Target[];
}
interface GrafanaDashboard {
  title: string;
  uid: string;
  panels: Panel[];
  templating: { list: { name: string; type: string; query: unknown }[] };
}

const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as GrafanaDashboard;
const expressions = dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr));

/** The metric families the expressions read: histogram series (_bucket, _sum, _count) belong to their histogram. */
function metricFamilies(): string[] {
  const names = new Set<string>();
  for (const expr of expressions) for (const [name] of expr.matchAll(/\bmeshfed_[a-z0-9_]+/g)) names.add(name.replace(/_(bucket|sum|count)$/, ''));
  return [...names].sort();
}

const work = mkdtempSync(join(tmpdir(), 'meshfed-grafana-'));
const children = new Set<ChildProcessByStdio<null, Readable, Readable>>();
let serve: Serve;
let token: string;

beforeAll(async () => {
  const gatewayPort = await freePort('127.0.0.1');
  const file = join(work, 'federation.yaml');
  writeFileSync(
    file,
    [
      'apiVersion: meshfed.io/v1alpha1\nkind: Federation\nmetadata: { name: grafana }\nspec: { trustDomain: grafana.test }',
      [
        'apiVersion: meshfed.io/v1alpha1',
        'kind: Cluster',
        'metadata: { name: east-1 }',
        'spec:',
        '  network: net-east',
        '  region: us-east',
        `  gateways: [{ address: 127.0.0.1, port: ${String(gatewayPort)} }]`,
        '  services:',
        '    - name: reviews',
        '      ports: [{ name: grpc, port: 9080 }]',
        '      endpoints: [{ address: 10.0.0.1, ports: [{ name: grpc, port: 9080 }] }]',
      ].join('\n'),
      'apiVersion: meshfed.io/v1alpha1\nkind: VirtualDestination\nmetadata: { name: reviews }\nspec: { hostname: reviews.global, ports: [{ number: 9080, protocol: GRPC }], backends: [{ name: reviews }] }',
    ].join('\n---\n') + '\n',
  );
  const stateDir = join(work, 'state');
  serve = await startServe(['--config', file, '--state-dir', stateDir, '--api', '127.0.0.1:0', '--xds', '127.0.0.1:0', '--dns', '127.0.0.1:0', '--ca-listen', '127.0.0.1:0', '--no-workloads'], { cwd: work, children });
  token = readFileSync(join(stateDir, 'api-token'), 'utf8').trim();
});

afterAll(async () => {
  await serve.stop();
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  rmSync(work, { recursive: true, force: true });
});

async function metricsText(): Promise<string> {
  const response = await fetch(`${serve.api}/metrics`, { signal: AbortSignal.timeout(10_000) });
  expect(response.status).toBe(200);
  return response.text();
}

describe('the Grafana dashboard', () => {
  it('is a Grafana JSON model whose every panel queries the Prometheus datasource variable', () => {
    expect(dashboard.title).toBe('meshfed');
    expect(dashboard.uid).toMatch(/^[\w-]{1,40}$/);
    expect(dashboard.templating.list.find((v) => v.name === 'datasource')).toMatchObject({ type: 'datasource', query: 'prometheus' });
    for (const panel of dashboard.panels) {
      expect(panel.datasource, panel.title).toEqual({ type: 'prometheus', uid: '${datasource}' });
      expect(panel.targets.length, panel.title).toBeGreaterThan(0);
      for (const target of panel.targets) expect(target.datasource).toEqual(panel.datasource);
    }
  });

  it('has the panels the issue names: cluster state, xDS proxies, push and convergence quantiles, NACKs, DNS rcodes, gateway outcomes, certificates', () => {
    const uses = (pattern: RegExp): boolean => expressions.some((e) => pattern.test(e));
    expect(uses(/meshfed_cluster_state\b/)).toBe(true);
    expect(uses(/meshfed_xds_connected_proxies\b/)).toBe(true);
    expect(uses(/histogram_quantile\(0\.99, sum by \(le\) \(rate\(meshfed_xds_push_latency_seconds_bucket/)).toBe(true);
    expect(uses(/histogram_quantile\(0\.99, sum by \(le\) \(rate\(meshfed_xds_convergence_seconds_bucket/)).toBe(true);
    expect(uses(/meshfed_xds_nacks_total/)).toBe(true);
    expect(uses(/sum by \(rcode\) \(rate\(meshfed_dns_queries_total/)).toBe(true);
    expect(uses(/sum by \(outcome\) \(rate\(meshfed_gateway_connections_total/)).toBe(true);
    expect(uses(/meshfed_ca_certificates_issued_total/)).toBe(true);
    expect(uses(/meshfed_ca_certificate_expiry_timestamp_seconds/)).toBe(true);
  });

  it('reads only metrics a running meshfed exports', async () => {
    const text = await metricsText();
    const exported = new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]));
    const families = metricFamilies();
    expect(families.length).toBeGreaterThanOrEqual(10);
    expect(families.filter((name) => !exported.has(name))).toEqual([]);
  });

  it('shows when each root and intermediate expires, as the trust API says', async () => {
    const response = await fetch(`${serve.api}/api/v1/trust`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(10_000) });
    const trust = (await response.json()) as TrustInfo;
    const text = await metricsText();
    const value = (labels: string): number => Number(new RegExp(`^meshfed_ca_certificate_expiry_timestamp_seconds\\{${labels}\\} (\\d+)$`, 'm').exec(text)?.[1]);
    const root = trust.roots[0];
    const intermediate = trust.intermediates.find((i) => i.cluster === 'east-1');
    expect(value(`kind="root",cluster="",root="${root?.id ?? ''}"`)).toBe(Math.floor(Date.parse(root?.notAfter ?? '') / 1000));
    expect(value(`kind="intermediate",cluster="east-1",root="${root?.id ?? ''}"`)).toBe(Math.floor(Date.parse(intermediate?.notAfter ?? '') / 1000));
  });
});
