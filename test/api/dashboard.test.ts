/**
 * The dashboard in real Chromium (Debian's /usr/bin/chromium driven by playwright-core) against a real `meshfed serve`
 * of the demo federation (test/drills/shipped.ts: its clusters, workloads, gateways and reviews.global on addresses of
 * this test's own): sign-in (a wrong token is refused, the summary's `#token=` link signs in), every view showing what
 * the API says, navigation, a change made through the API showing up while the page is open, a drill's chart, and no
 * script error or content-security-policy violation on the way. Screenshots land in test-results/dashboard/; with
 * UPDATE_DOCS_PICTURE=1 the clusters view also becomes docs/dashboard.png, the README's picture.
 */
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TrustInfo } from '../../src/api/trust.js';
import type { DrillResult } from '../../src/drills/result.js';
import { eventually } from '../sim/helpers.js';
import { startShippedFederation, type ShippedFederation } from '../drills/shipped.js';

const ROOT = resolve(import.meta.dirname, '../..');
const ARTIFACTS = join(ROOT, 'test-results/dashboard');
const CHROMIUM = '/usr/bin/chromium';
/** playwright's waits: generous, the machine is shared */
const WAIT_MS = 30_000;

let federation: ShippedFederation;
let browser: Browser;
let context: BrowserContext;
let page: Page;
/** console errors, page errors and refused requests of every page: CSP violations show up here */
const problems: string[] = [];

const DRILL = {
  apiVersion: 'meshfed.io/v1alpha1',
  kind: 'FailoverDrill',
  metadata: { name: 'dashboard-drain' },
  spec: {
    duration: '8s',
    traffic: [{ name: 'from-east-1', from: 'east-1', to: 'reviews.global:9080', rate: 10 }],
    steps: [
      { at: '2s', name: 'drain-east-1', fault: 'drain', target: { cluster: 'east-1', virtualDestination: 'reviews' } },
      { at: '5s', name: 'undrain', fault: 'restore', of: 'drain-east-1' },
    ],
    expectations: [{ servedBy: { traffic: 'from-east-1', clusters: ['east-1', 'east-2'] } }],
  },
};

async function api(method: string, path: string, body?: unknown): Promise<{ status: number; json: unknown }> {
  const response = await fetch(new URL(path, federation.serve.api), {
    method,
    headers: { authorization: `Bearer ${federation.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await response.text();
  return { status: response.status, json: text ? (JSON.parse(text) as unknown) : undefined };
}

function watch(p: Page): Page {
  p.on('console', (message) => {
    if (message.type() === 'error' || message.type() === 'warning') problems.push(`console ${message.type()} on ${p.url()}: ${message.text()}`);
  });
  p.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  p.on('requestfailed', (request) => problems.push(`request failed: ${request.url()} ${request.failure()?.errorText ?? ''}`));
  return p;
}

async function screenshot(name: string): Promise<void> {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}

async function texts(selector: string): Promise<string[]> {
  return page.locator(selector).allInnerTexts();
}

let drillId = '';

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  federation = await startShippedFederation(140);
  // the drill runs while the first views are looked at
  const started = await api('POST', '/api/v1/drills', DRILL);
  expect(started.status).toBe(202);
  drillId = (started.json as { id: string }).id;
  browser = await chromium.launch({ executablePath: CHROMIUM });
  context = await browser.newContext({ viewport: { width: 1360, height: 900 } });
  page = watch(await context.newPage());
}, 120_000);

// Chromium and serve stop side by side: on a loaded machine each can take a while
afterAll(async () => {
  await Promise.all([browser.close(), federation.close()]);
}, 120_000);

describe('the dashboard in Chromium', () => {
  it('refuses a wrong token with a message, and stays on the sign-in form', async () => {
    await page.goto(`${federation.serve.api}/`);
    await page.fill('#token', 'not-the-token');
    await page.click('#login button[type=submit]');
    const error = await page.waitForSelector('#login p.error', { timeout: WAIT_MS });
    expect(await error.innerText()).toContain('refused');
    expect(await page.isHidden('#nav')).toBe(true);
    expect(await page.evaluate<string | null>("sessionStorage.getItem('meshfed.token')")).toBeNull();
    await screenshot('wrong-token');
  });

  it('signs in with the token and shows every cluster with its state, network, locality, gateway and last sync', async () => {
    await page.fill('#token', federation.token);
    await page.click('#login button[type=submit]');
    await page.waitForSelector('tr[data-cluster="west-1"]', { timeout: WAIT_MS });
    const json = (await api('GET', '/api/v1/clusters')).json as { clusters: { name: string; state: string; network: string; region: string; zone: string; gateways: { address: string; port: number }[] }[] };
    expect(json.clusters.map((c) => c.name)).toEqual(['east-1', 'east-2', 'west-1']);
    for (const cluster of json.clusters) {
      const row = (await page.locator(`tr[data-cluster="${cluster.name}"]`).innerText()).replace(/\s+/g, ' ');
      expect(row).toContain(cluster.state);
      expect(row).toContain(cluster.network);
      expect(row).toContain(`${cluster.region}/${cluster.zone}`);
      for (const g of cluster.gateways) expect(row).toContain(`${g.address}:${String(g.port)}`);
      expect(row).toMatch(/\d+ s ago/);
    }
    expect(await page.locator('nav a[aria-current=page]').innerText()).toBe('Clusters');
    await screenshot('clusters');
    if (process.env.UPDATE_DOCS_PICTURE === '1') await page.screenshot({ path: join(ROOT, 'docs/dashboard.png'), clip: { x: 0, y: 0, width: 1360, height: 380 } });
  });

  it('shows the virtual destinations with their failover tiers and live endpoint counts per cluster', async () => {
    await page.click('nav a[data-view=virtualdestinations]');
    await page.waitForSelector('tr[data-vd="reviews"]', { timeout: WAIT_MS });
    expect(new URL(page.url()).hash).toBe('#/virtualdestinations');
    interface VdList {
      virtualDestinations: { metadata: { name: string }; status: { endpoints: number; healthy: number; clusters: { cluster: string; endpoints: number; healthy: number }[] } }[];
    }
    const json = (await api('GET', '/api/v1/virtualdestinations')).json as VdList;
    const reviews = json.virtualDestinations.find((vd) => vd.metadata.name === 'reviews');
    expect(reviews?.status.clusters.length).toBeGreaterThan(1);
    const row = page.locator('tr[data-vd="reviews"]');
    expect(await row.innerText()).toContain('reviews.global');
    expect(await row.innerText()).toContain('locality: same zone → same region');
    // healthy counts move while the drill drains east-1: compare with what the API says in the same moment
    await eventually(async () => {
      const now = ((await api('GET', '/api/v1/virtualdestinations')).json as VdList).virtualDestinations.find((vd) => vd.metadata.name === 'reviews');
      const shown = await row.locator('.count').innerText();
      return now !== undefined && shown === `${String(now.status.healthy)} of ${String(now.status.endpoints)}`;
    }, 'the page to show the API endpoint count of reviews');
    for (const c of reviews?.status.clusters ?? []) {
      expect(await row.locator(`li[data-cluster="${c.cluster}"]`).innerText()).toContain(`${c.cluster} `);
      expect(await row.locator(`li[data-cluster="${c.cluster}"]`).innerText()).toMatch(new RegExp(`/${String(c.endpoints)} healthy$`));
    }
    await screenshot('virtual-destinations');
  });

  it('shows a virtual destination applied and then deleted through the API while the page is open, without a reload', async () => {
    const created = await api('POST', '/api/v1/virtualdestinations', {
      apiVersion: 'meshfed.io/v1alpha1',
      kind: 'VirtualDestination',
      metadata: { name: 'echo-west-first' },
      spec: { hostname: 'echo.global', ports: [{ number: 7070, protocol: 'GRPC' }], backends: [{ name: 'echo' }], failover: { policy: 'priority', order: [{ cluster: 'west-1' }, { region: 'us-east' }] } },
    });
    expect(created.status).toBe(201);
    const row = await page.waitForSelector('tr[data-vd="echo-west-first"]', { timeout: WAIT_MS });
    expect((await row.innerText()).replace(/\s+/g, ' ')).toContain('priority: west-1 → us-east → the rest');
    await screenshot('virtual-destination-added');
    expect((await api('DELETE', '/api/v1/virtualdestinations/echo-west-first')).status).toBe(204);
    await page.waitForSelector('tr[data-vd="echo-west-first"]', { state: 'detached', timeout: WAIT_MS });
    expect(await page.isVisible('tr[data-vd="reviews"]')).toBe(true);
  });

  it('explains what a client in west-1 sees for reviews.global: the endpoints, priorities and gateways of the API answer', async () => {
    await page.click('nav a[data-view=explain]');
    await page.waitForSelector('#explain-form', { timeout: WAIT_MS });
    await page.selectOption('#explain-from', 'west-1');
    await page.selectOption('#explain-host', 'reviews.global:9080');
    await page.click('#explain-form button[type=submit]');
    await page.waitForSelector('#explanation tbody tr', { timeout: WAIT_MS });
    expect(new URL(page.url()).hash).toBe('#/explain?from=west-1&host=reviews.global%3A9080');
    const json = (await api('GET', '/api/v1/explain?from=west-1&host=reviews.global:9080')).json as { groups: { priority: number; endpoints: { address: string; port: number; via: string }[] }[] };
    const expected = json.groups.flatMap((g) => g.endpoints.map((e) => `${String(g.priority)} ${e.address}:${String(e.port)} ${e.via}`));
    const rows = await Promise.all((await page.locator('#explanation tbody tr').all()).map((tr) => tr.locator('td').allInnerTexts()));
    expect(rows.map((cells) => `${cells[0] ?? ''} ${cells[3] ?? ''} ${cells[6] ?? ''}`)).toEqual(expected);
    // west-1's own workloads first and direct; the east behind its gateway
    expect(rows[0]?.[6]).toBe('direct');
    expect(rows.some((cells) => cells[6]?.startsWith('gateway of east-'))).toBe(true);
    await screenshot('explain');
  });

  it('lists the drill and draws its chart, with a legend naming the clusters that served it', async () => {
    let result: DrillResult | undefined;
    await eventually(async () => {
      result = ((await api('GET', `/api/v1/drills/${drillId}`)).json as { result?: DrillResult }).result;
      return result !== undefined;
    }, 'the drill to end');
    await page.click('nav a[data-view=drills]');
    const link = await page.waitForSelector(`tr[data-drill="${drillId}"] a`, { timeout: WAIT_MS });
    expect(await link.innerText()).toBe('dashboard-drain');
    await link.click();
    await page.waitForSelector('section.drill svg.chart', { timeout: WAIT_MS });
    expect(new URL(page.url()).hash).toBe(`#/drills/${drillId}`);
    expect(result?.clusters).toEqual(expect.arrayContaining(['east-1', 'east-2']));
    const legend = await Promise.all((await page.locator('section.drill ul.legend li.cluster').all()).map((li) => li.getAttribute('data-cluster')));
    expect(legend).toEqual(result?.clusters);
    const detail = await page.locator('section.drill').innerText();
    for (const expectation of result?.expectations ?? []) expect(detail).toContain(expectation.name);
    for (const event of result?.events ?? []) expect(detail).toContain(event.label);
    // the chart has one area per cluster that served, and the drain marked
    expect(await page.locator('section.drill svg.chart path.area').count()).toBeGreaterThanOrEqual(2);
    expect(await page.locator('section.drill svg.chart g.marker[data-kind=fault]').count()).toBe(1);
    await screenshot('drill');
  });

  it("serves an ended drill's HTML report and its traffic sections behind the token", async () => {
    const get = (path: string, token = federation.token): Promise<Response> => fetch(new URL(path, federation.serve.api), { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(10_000) });
    const report = await get(`/api/v1/drills/${drillId}/report.html`);
    expect(report.status).toBe(200);
    expect(report.headers.get('content-type')).toContain('text/html');
    const html = await report.text();
    expect(html).toContain('<title>Drill dashboard-drain:');
    const traffic = await (await get(`/api/v1/drills/${drillId}/traffic.html`)).text();
    expect(traffic).toContain('<svg class="chart"');
    expect(html).toContain(traffic);
    expect(traffic).not.toContain('<style');
    expect((await get('/api/v1/drills/no-such-drill/report.html')).status).toBe(404);
    expect((await get(`/api/v1/drills/${drillId}/report.html`, 'wrong')).status).toBe(401);
  });

  it('shows the trust domain: roots, every intermediate with its expiry, and the rotation', async () => {
    await page.click('nav a[data-view=trust]');
    await page.waitForSelector('tr[data-cluster="west-1"]', { timeout: WAIT_MS });
    const json = (await api('GET', '/api/v1/trust')).json as TrustInfo;
    expect(json.trustDomain).toBe('meshfed.local');
    expect(await page.locator('dl.facts').first().innerText()).toContain('meshfed.local');
    expect(await page.locator('tr[data-root]').count()).toBe(json.roots.length);
    expect(await page.locator(`tr[data-root="${json.activeRootId}"]`).innerText()).toContain('active');
    for (const intermediate of json.intermediates) {
      const row = await page.locator(`tr[data-cluster="${intermediate.cluster}"]`).innerText();
      expect(row).toContain((intermediate.notAfter ?? '').slice(0, 10));
      expect(row).toContain((intermediate.renewAfter ?? '').slice(0, 10));
    }
    expect(await texts('#rotation-phase')).toEqual([json.rotation.phase]);
    await screenshot('trust');
  });

  it('signs out: the token leaves the tab', async () => {
    await page.click('#logout');
    await page.waitForSelector('#login', { timeout: WAIT_MS });
    expect(await page.evaluate<string | null>("sessionStorage.getItem('meshfed.token')")).toBeNull();
  });

  it("signs in from the summary's dashboard link and takes the token out of the address bar", async () => {
    const link = /dashboard {6}(http:\/\/\S+#token=\S+)/.exec(federation.serve.stdout)?.[1];
    expect(link).toBeDefined();
    const fresh = watch(await context.newPage());
    await fresh.goto(link ?? '');
    await fresh.waitForSelector('tr[data-cluster="east-1"]', { timeout: WAIT_MS });
    expect(new URL(fresh.url()).hash).toBe('#/clusters');
    expect(fresh.url()).not.toContain(federation.token);
    await fresh.close();
  });

  it('ran without a script error, a refused request or a content-security-policy violation', () => {
    // the wrong token's 401 is the one error a browser logs on its own
    expect(problems.filter((p) => !p.includes('401'))).toEqual([]);
  });
});
