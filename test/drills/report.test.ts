/**
 * A drill's reports as their readers get them: JUnit XML parsed back the way a CI system reads it, and the HTML page
 * opened from disk in real Chromium (Debian's /usr/bin/chromium driven by playwright-core), which must draw the chart
 * with the right legend and markers without loading anything. Screenshots land in test-results/drills/; with
 * UPDATE_DOCS_PICTURE=1 the fixture's report also becomes docs/drill-report.png, the README's picture.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { drillHtml, drillJson, drillJunit, writeDrillReports } from '../../src/drills/report.js';
import type { DrillResult, DrillSecond } from '../../src/drills/result.js';
import { east1Outage } from './fixtures/east-1-outage.js';

const ROOT = resolve(import.meta.dirname, '../..');
const ARTIFACTS = join(ROOT, 'test-results/drills');
const CHROMIUM = '/usr/bin/chromium';
const work = mkdtempSync(join(tmpdir(), 'meshfed-drill-report-'));

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

const EVIL_CLUSTER = '<script>document.title="owned"</script>';
const EVIL_STREAM = '<img src=x onerror="document.title=1">';
const EVIL_LABEL = '</text><script>alert(1)</script>';
const EVIL_NAME = `drill <b>"east" & 'west'</b> ]]>`;
const EVIL_DETAIL = 'expected < 5 s & got 7 s\n"line two" \u0001 \'quoted\'';

/** A failed drill whose every name comes from a hostile scenario file. */
function hostile(): DrillResult {
  const clusters = ['east-1', EVIL_CLUSTER].sort();
  return {
    ...east1Outage,
    name: EVIL_NAME,
    scenario: 'scenarios/<evil>.yaml',
    passed: false,
    clusters,
    streams: [
      {
        name: EVIL_STREAM,
        from: EVIL_CLUSTER,
        to: 'reviews.global:9080',
        via: 'dns',
        seconds: [0, 1, 2, 3].map((t): DrillSecond => ({ t, byCluster: { [t < 2 ? 'east-1' : EVIL_CLUSTER]: 10 }, errors: t === 2 ? { '<b>UNAVAILABLE</b>': 2 } : {} })),
      },
    ],
    events: [{ t: 2, kind: 'fault', label: EVIL_LABEL }],
    expectations: [
      { name: 'shifts <fast> & "well"', passed: true, detail: 'shifted in 0.8 s' },
      { name: EVIL_NAME, passed: false, detail: EVIL_DETAIL },
    ],
    shifts: [{ stream: EVIL_STREAM, fault: EVIL_LABEL, timeToDetectMs: 200, failedDuringShift: 2 }],
  };
}

// --- a strict reader of the XML subset JUnit files use, as picky as a CI system's parser ----------------------------

interface XmlElement {
  name: string;
  attributes: Map<string, string>;
  children: XmlElement[];
  text: string;
}

function isXmlChar(code: number): boolean {
  return code === 0x9 || code === 0xa || code === 0xd || (code >= 0x20 && code <= 0xd7ff) || (code >= 0xe000 && code <= 0xfffd) || code >= 0x10000;
}

function parseXml(xml: string): XmlElement {
  let i = 0;
  const fail = (why: string): never => {
    throw new Error(`not well-formed XML at offset ${i}: ${why}: ${JSON.stringify(xml.slice(i, i + 40))}`);
  };
  const decode = (raw: string): string => {
    if (raw.includes('<')) fail('raw < in character data');
    const decoded = raw.replace(/&(?:(lt|gt|amp|quot|apos)|#([0-9]+)|#x([0-9a-fA-F]+));/g, (_whole, entity: string | undefined, dec: string | undefined, hex: string | undefined) => {
      if (entity !== undefined) return { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" }[entity] ?? fail(entity);
      const code = dec === undefined ? parseInt(hex ?? '', 16) : parseInt(dec, 10);
      if (!isXmlChar(code)) fail(`reference to a character XML forbids: ${code}`);
      return String.fromCodePoint(code);
    });
    if (raw.replace(/&(?:lt|gt|amp|quot|apos|#[0-9]+|#x[0-9a-fA-F]+);/g, '').includes('&')) fail('bare &');
    for (const ch of raw) if (!isXmlChar(ch.codePointAt(0) ?? 0)) fail(`character XML forbids: ${ch.codePointAt(0)}`);
    return decoded;
  };
  const skipSpace = (): void => {
    while (/\s/.test(xml[i] ?? '')) i++;
  };
  const name = (): string => {
    const match = /[A-Za-z_:][-\w.:]*/y;
    match.lastIndex = i;
    const found = match.exec(xml)?.[0] ?? fail('expected a name');
    i += found.length;
    return found;
  };
  const expectText = (text: string): void => {
    if (!xml.startsWith(text, i)) fail(`expected ${text}`);
    i += text.length;
  };
  const element = (): XmlElement => {
    expectText('<');
    const node: XmlElement = { name: name(), attributes: new Map(), children: [], text: '' };
    for (;;) {
      const spaced = /\s/.test(xml[i] ?? '');
      skipSpace();
      if (xml.startsWith('/>', i)) {
        i += 2;
        return node;
      }
      if (xml[i] === '>') break;
      if (!spaced) fail('attributes must be separated by white space');
      const attribute = name();
      if (node.attributes.has(attribute)) fail(`duplicate attribute ${attribute}`);
      skipSpace();
      expectText('=');
      skipSpace();
      const quote = xml[i];
      if (quote !== '"' && quote !== "'") fail('unquoted attribute value');
      const end = xml.indexOf(quote ?? '"', i + 1);
      if (end === -1) fail('unterminated attribute value');
      // what XML parsers do to attribute values: literal white space becomes spaces, references keep theirs
      node.attributes.set(attribute, decode(xml.slice(i + 1, end).replace(/[\t\n\r]/g, ' ')));
      i = end + 1;
    }
    i++;
    for (;;) {
      const next = xml.indexOf('<', i);
      if (next === -1) fail(`unclosed <${node.name}>`);
      const raw = xml.slice(i, next);
      if (raw.includes(']]>')) fail(']]> in character data');
      node.text += decode(raw);
      i = next;
      if (xml.startsWith('</', i)) {
        i += 2;
        if (name() !== node.name) fail(`mismatched end tag for <${node.name}>`);
        skipSpace();
        expectText('>');
        return node;
      }
      if (xml.startsWith('<!', i) || xml.startsWith('<?', i)) fail('markup a JUnit report has no use for');
      node.children.push(element());
    }
  };
  expectText('<?xml version="1.0" encoding="UTF-8"?>');
  skipSpace();
  const root = element();
  skipSpace();
  if (i !== xml.length) fail('content after the root element');
  return root;
}

function children(node: XmlElement | undefined, name: string): XmlElement[] {
  return node?.children.filter((c) => c.name === name) ?? [];
}

describe('JUnit report', () => {
  it('has one suite named after the drill and one test case per expectation', () => {
    const root = parseXml(drillJunit(east1Outage));
    expect(root.name).toBe('testsuites');
    expect(Object.fromEntries(root.attributes)).toMatchObject({ tests: '4', failures: '0', errors: '0' });
    const suites = children(root, 'testsuite');
    expect(suites).toHaveLength(1);
    const suite = suites[0];
    expect(Object.fromEntries(suite?.attributes ?? [])).toEqual({
      name: 'east-1-outage',
      tests: '4',
      failures: '0',
      errors: '0',
      skipped: '0',
      time: '40.000',
      timestamp: '2025-06-03T09:14:07',
    });
    const properties = children(children(suite, 'properties')[0], 'property').map((p) => [p.attributes.get('name'), p.attributes.get('value')]);
    expect(properties).toContainEqual(['scenario', 'scenarios/east-1-outage.yaml']);
    const cases = children(suite, 'testcase');
    expect(cases.map((c) => c.attributes.get('name'))).toEqual(east1Outage.expectations.map((e) => e.name));
    expect(cases.flatMap((c) => children(c, 'failure'))).toEqual([]);
    expect(children(cases[0], 'system-out')[0]?.text).toBe('shifted in 0.94 s');
    // the timeline and the shift measurements are in the suite's output, where CI systems show them
    const output = children(suite, 'system-out')[0]?.text ?? '';
    expect(output).toContain('10.2 s  fault  kill-workloads east-1 reviews');
    expect(output).toContain('grpc from east-1 / kill-workloads east-1 reviews: detected 180 ms, shifted 940 ms, 4 failed');
    expect(output).toContain('failed back 1.45 s');
  });

  it('reports a broken expectation as a failure, every name and detail escaped and read back intact', () => {
    const result = hostile();
    const xml = drillJunit(result);
    const root = parseXml(xml);
    expect(Object.fromEntries(root.attributes)).toMatchObject({ tests: '2', failures: '1' });
    const suite = children(root, 'testsuite')[0];
    expect(suite?.attributes.get('name')).toBe(EVIL_NAME);
    const [passed, failed] = children(suite, 'testcase');
    expect(passed?.attributes.get('name')).toBe('shifts <fast> & "well"');
    expect(children(passed, 'failure')).toEqual([]);
    expect(failed?.attributes.get('name')).toBe(EVIL_NAME);
    expect(failed?.attributes.get('classname')).toBe(EVIL_NAME);
    const failure = children(failed, 'failure')[0];
    // XML 1.0 cannot carry U+0001 at all, so it is replaced; the line break survives even in the attribute
    const readable = EVIL_DETAIL.replace('\u0001', '\uFFFD');
    expect(failure?.attributes.get('message')).toBe(readable);
    expect(failure?.text).toBe(readable);
    expect(children(suite, 'system-out')[0]?.text).toContain(`2 s  fault  ${EVIL_LABEL}`);
  });
});

describe('HTML report', () => {
  it('turns hostile names into text, never into markup', () => {
    const html = drillHtml(hostile());
    expect(html).not.toMatch(/<script|<img|<b>|<evil>|<\/text><script/i);
    expect(html).toContain('&lt;script&gt;document.title=&quot;owned&quot;&lt;/script&gt;');
    expect(html).toContain('&lt;img src=x onerror=&quot;document.title=1&quot;&gt;');
  });

  it('loads nothing from anywhere: no scripts, no links to fetch, and a policy that forbids them', () => {
    const html = drillHtml(east1Outage);
    expect(html).not.toMatch(/<script|<link|<img|<iframe|\bsrc=|\bhref=|url\(|@import/i);
    expect(html).toMatch(/<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'sha256-[A-Za-z0-9+/=]+'; base-uri 'none'; form-action 'none'">/);
  });

  it('is the same, byte for byte, for the same result (JSON and JUnit too)', () => {
    const copy = structuredClone(east1Outage);
    expect(drillHtml(copy)).toBe(drillHtml(east1Outage));
    expect(drillJunit(copy)).toBe(drillJunit(east1Outage));
    expect(drillJson(copy)).toBe(drillJson(east1Outage));
  });
});

describe('writeDrillReports', () => {
  it('creates the directory and writes drill.json, junit.xml and report.html', () => {
    const dir = join(work, 'runs', 'east-1-outage');
    const paths = writeDrillReports(east1Outage, dir);
    expect(paths).toEqual({ json: join(dir, 'drill.json'), junit: join(dir, 'junit.xml'), html: join(dir, 'report.html') });
    expect(JSON.parse(readFileSync(paths.json, 'utf8'))).toEqual(east1Outage);
    expect(readFileSync(paths.junit, 'utf8')).toBe(drillJunit(east1Outage));
    expect(readFileSync(paths.html, 'utf8')).toBe(drillHtml(east1Outage));
  });
});

const hasChromium = existsSync(CHROMIUM);

describe.skipIf(!hasChromium)(hasChromium ? 'HTML report in real Chromium' : `HTML report in real Chromium: skipped, ${CHROMIUM} is missing (.ci/run installs Debian's chromium)`, () => {
  let browser: Browser;

  beforeAll(async () => {
    browser = await chromium.launch({ executablePath: CHROMIUM });
  });

  afterAll(async () => {
    await browser.close();
  });

  interface Opened {
    page: Page;
    url: string;
    requests: string[];
    errors: string[];
  }

  /** Opens a written report from disk the way a person double-clicks it, noting every request and console error. */
  async function open(result: DrillResult, name: string): Promise<Opened> {
    const { html } = writeDrillReports(result, join(work, name));
    const page = await browser.newPage({ viewport: { width: 1040, height: 900 } });
    const requests: string[] = [];
    const errors: string[] = [];
    page.on('request', (request) => requests.push(request.url()));
    page.on('console', (message) => {
      if (message.type() === 'error' || message.type() === 'warning') errors.push(message.text());
    });
    page.on('pageerror', (error) => errors.push(error.message));
    const url = pathToFileURL(html).href;
    await page.goto(url, { waitUntil: 'load' });
    return { page, url, requests, errors };
  }

  it('draws a chart per stream with every cluster in its legend, in one colour each, and the faults marked', async () => {
    const { page, url, requests, errors } = await open(east1Outage, 'chromium-fixture');
    expect(await page.title()).toBe('Drill east-1-outage: passed');
    expect(await page.locator('.banner').textContent()).toBe('Passed: every expectation held (4 of 4).');
    const swatches = new Map<string, string | null>();
    for (const stream of east1Outage.streams) {
      const chart = page.getByRole('img', { name: `Traffic share per cluster and errors: ${stream.name}` });
      const box = await chart.boundingBox();
      expect(box?.width).toBeGreaterThan(500);
      expect(box?.height).toBeGreaterThan(200);

      const legend = page.getByRole('list', { name: `Clusters serving ${stream.name}` });
      expect(await legend.getByRole('listitem').allTextContents()).toEqual(['east-1', 'east-2', 'west-1']);
      for (const cluster of east1Outage.clusters) {
        const colour = await legend.locator(`li[data-cluster="${cluster}"] rect`).getAttribute('fill');
        if (!swatches.has(cluster)) swatches.set(cluster, colour);
        expect(colour, `${cluster} keeps its colour across charts`).toBe(swatches.get(cluster));
        const served = stream.seconds.some((s) => (s.byCluster[cluster] ?? 0) > 0);
        const areas = chart.locator(`path.area[data-cluster="${cluster}"]`);
        expect(await areas.count()).toBe(served ? 1 : 0);
        if (served) expect(await areas.getAttribute('fill'), `${cluster}'s area is drawn in its legend colour`).toBe(colour);
      }

      for (const event of east1Outage.events) {
        const label = chart.getByText(event.label, { exact: true });
        expect(await label.isVisible(), `marker "${event.label}" is visible`).toBe(true);
        const at = await label.boundingBox();
        expect(at === null || box === null ? false : at.x >= box.x && at.x + at.width <= box.x + box.width && at.y >= box.y).toBe(true);
      }
    }
    expect(new Set(swatches.values()).size).toBe(east1Outage.clusters.length);
    expect(errors).toEqual([]);
    expect(requests).toEqual([url]);

    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'east-1-outage.png'), fullPage: true });
    if (process.env.UPDATE_DOCS_PICTURE === '1') {
      const figure = await page.locator('figure').first().boundingBox();
      const height = Math.ceil((figure?.y ?? 0) + (figure?.height ?? 900) + 6);
      await page.screenshot({ path: join(ROOT, 'docs/drill-report.png'), fullPage: true, clip: { x: 0, y: 0, width: 1040, height } });
    }
    await page.close();
  });

  it('shows hostile names as text: no element comes out of them, and a failed drill says so', async () => {
    const result = hostile();
    const { page, requests, url, errors } = await open(result, 'chromium-hostile');
    expect(await page.locator('script, img, b, evil').count()).toBe(0);
    expect(await page.title()).toBe(`Drill ${EVIL_NAME}: failed`);
    expect(await page.locator('.banner').textContent()).toBe('Failed: 1 of 2 expectations did not hold.');
    expect(await page.getByRole('heading', { name: EVIL_STREAM }).isVisible()).toBe(true);
    expect(await page.getByRole('list', { name: `Clusters serving ${EVIL_STREAM}` }).getByRole('listitem').allTextContents()).toEqual(result.clusters);
    expect(await page.getByRole('img').getByText(EVIL_LABEL, { exact: true }).isVisible()).toBe(true);
    expect(await page.getByRole('row', { name: EVIL_NAME }).textContent()).toContain('✗ failed');
    expect(errors).toEqual([]);
    expect(requests).toEqual([url]);
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'hostile-names.png'), fullPage: true });
    await page.close();
  });
});
