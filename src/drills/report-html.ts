/**
 * A drill as one self-contained HTML page: verdict, shift measurements, expectations, and per stream an inline SVG
 * chart of traffic share per serving cluster and errors per second, with the faults and restores marked on it.
 * Nothing is loaded from anywhere (the CSP forbids it), every string from the result is escaped, and the same result
 * always gives the same bytes.
 */
import { createHash } from 'node:crypto';
import { escapeXml as esc, formatMs, formatSeconds } from './report-junit.js';
import type { DrillEvent, DrillResult, DrillSecond, DrillStream } from './result.js';

const STYLE = `
:root { color-scheme: light; font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1b1b1b; background: #fff; }
body { margin: 0 auto; max-width: 1000px; padding: 24px; line-height: 1.4; }
h1 { font-size: 1.6rem; margin: 0 0 4px; }
h2 { font-size: 1.2rem; margin: 28px 0 8px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
h3 { font-size: 1.05rem; margin: 20px 0 4px; }
code { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 0.92em; }
.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 8px 0 16px; font-size: 0.92rem; }
.facts dt { color: #555; }
.facts dd { margin: 0; }
.banner { padding: 10px 14px; border-radius: 6px; font-weight: 600; font-size: 1.05rem; margin: 12px 0; }
.banner.pass { background: #e6f4ea; color: #14532d; border: 1px solid #86c79a; }
.banner.fail { background: #fdecea; color: #7f1d1d; border: 1px solid #f19999; }
table { border-collapse: collapse; width: 100%; margin: 6px 0 12px; font-size: 0.9rem; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #e2e2e2; vertical-align: top; }
th { color: #444; font-weight: 600; }
.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.ok { color: #14532d; font-weight: 600; white-space: nowrap; }
.bad { color: #b91c1c; font-weight: 600; white-space: nowrap; }
.detail { white-space: pre-line; }
.meta { margin: 0 0 6px; color: #444; font-size: 0.92rem; }
figure { margin: 0; }
svg.chart { display: block; width: 100%; height: auto; }
ul.legend { list-style: none; padding: 0; margin: 6px 0 0; display: flex; flex-wrap: wrap; gap: 4px 18px; font-size: 0.9rem; }
ul.legend li { display: flex; align-items: center; gap: 6px; }
.legends { display: flex; flex-wrap: wrap; gap: 0 36px; }
details { margin: 4px 0 12px; font-size: 0.9rem; }
summary { cursor: pointer; color: #333; }
footer { margin-top: 32px; color: #777; font-size: 0.8rem; }
`;

// Scripts, fonts, images, frames and connections are all forbidden; only the page's own <style> applies.
const CSP =
  `default-src 'none'; style-src 'sha256-${createHash('sha256').update(STYLE).digest('base64')}'; ` +
  `base-uri 'none'; form-action 'none'`;

/** Okabe–Ito colours (told apart with colour-blindness too), then evenly spread hues for larger federations. */
const PALETTE = ['#0072B2', '#E69F00', '#009E73', '#CC79A7', '#56B4E9', '#D55E00', '#F0E442', '#8C8C8C'];
const ERROR_COLOUR = '#1b1b1b';
const NONE_COLOUR = '#ececec';
const MARKERS: Record<DrillEvent['kind'], { colour: string; dash: string; name: string }> = {
  fault: { colour: '#c62828', dash: '6 3', name: 'fault' },
  restore: { colour: '#2e7d32', dash: '6 3', name: 'restore' },
  rollback: { colour: '#6a1b9a', dash: '2 3', name: 'rollback' },
  'expectation-failed': { colour: '#c62828', dash: '1 3', name: 'expectation broken' },
};

/** A colour per cluster, by its place in the sorted cluster list, so each cluster keeps its colour in every chart. */
function clusterColours(clusters: readonly string[]): Map<string, string> {
  return new Map(clusters.map((c, i) => [c, PALETTE[i] ?? `hsl(${Math.round((i * 137.508) % 360)} 60% 45%)`]));
}

/** The result's clusters, then any that served a stream without being listed, so no traffic goes unshown. */
function legendClusters(result: DrillResult): string[] {
  const listed = new Set(result.clusters);
  const extra = new Set<string>();
  for (const stream of result.streams) for (const s of stream.seconds) for (const c of Object.keys(s.byCluster)) if (!listed.has(c)) extra.add(c);
  return [...result.clusters, ...[...extra].sort()];
}

function count(value: number | undefined): number {
  return value !== undefined && Number.isFinite(value) && value > 0 ? value : 0;
}

function sum(values: Record<string, number>): number {
  return Object.values(values).reduce((a, b) => a + count(b), 0);
}

/** The largest of the values, at least 0 (a loop: a drill of hours has too many seconds to spread into Math.max). */
function largest(values: readonly number[]): number {
  return values.reduce((a, b) => (Number.isFinite(b) && b > a ? b : a), 0);
}

/** SVG coordinates with one decimal: short, and the same on every machine. */
function n(value: number): string {
  return String(Math.round(value * 10) / 10);
}

// --- the chart ---------------------------------------------------------------------------------------------------

const WIDTH = 960;
const LEFT = 64;
const RIGHT = WIDTH - 64;
const PLOT_HEIGHT = 240;
const LABEL_ROW = 16;
const LABEL_FONT = 11;
const LABEL_MAX_CHARS = 48;

interface Scale {
  max: number;
  ticks: number[];
}

/** An axis from 0 with round steps (1, 2, 5 × 10^k), about `intervals` of them. */
function niceScale(max: number, intervals: number): Scale {
  const raw = Math.max(max, 1) / intervals;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = Math.max(1, [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= raw) ?? 10 * magnitude);
  const top = Math.ceil(Math.max(max, 1) / step) * step;
  const ticks: number[] = [];
  for (let v = 0; v <= top + step / 2; v += step) ticks.push(v);
  return { max: top, ticks };
}

const TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600];

function timeTicks(domain: number): number[] {
  const step = TIME_STEPS.find((s) => domain / s <= 10) ?? Math.ceil(domain / 10 / 3600) * 3600;
  const ticks: number[] = [];
  for (let t = 0; t <= domain + 1e-9; t += step) ticks.push(t);
  return ticks;
}

/** Consecutive seconds (t, t+1, ...) for which `keep` holds: each run becomes one area or one line. */
function runs(seconds: readonly DrillSecond[], keep: (s: DrillSecond) => boolean): DrillSecond[][] {
  const out: DrillSecond[][] = [];
  let current: DrillSecond[] = [];
  for (const s of seconds) {
    const last = current.at(-1);
    if (!keep(s) || (last !== undefined && s.t !== last.t + 1)) {
      if (current.length > 0) out.push(current);
      current = [];
    }
    if (keep(s)) current.push(s);
  }
  if (current.length > 0) out.push(current);
  return out;
}

interface PlacedLabel {
  event: DrillEvent;
  x: number;
  row: number;
  anchor: 'start' | 'end';
  text: string;
}

/** Marker labels side by side above the plot, each on the first row where it overlaps no other. */
function placeLabels(events: readonly DrillEvent[], x: (t: number) => number): PlacedLabel[] {
  const rowsEnd: number[] = [];
  return [...events]
    .sort((a, b) => a.t - b.t)
    .map((event) => {
      const text = event.label.length > LABEL_MAX_CHARS ? `${event.label.slice(0, LABEL_MAX_CHARS - 1)}…` : event.label;
      const width = text.length * LABEL_FONT * 0.62;
      const at = x(event.t);
      const anchor = at + 4 + width > WIDTH - 4 ? 'end' : 'start';
      const from = anchor === 'start' ? at : at - 4 - width;
      let row = rowsEnd.findIndex((end) => end + 8 <= from);
      if (row === -1) row = rowsEnd.length;
      rowsEnd[row] = anchor === 'start' ? at + 4 + width : at;
      return { event, x: at, row, anchor, text };
    });
}

function chart(result: DrillResult, stream: DrillStream, index: number, clusters: readonly string[], colours: Map<string, string>): string {
  const seconds = [...stream.seconds].sort((a, b) => a.t - b.t);
  const domain = Math.max(1, Number.isFinite(result.durationSeconds) ? result.durationSeconds : 0, (seconds.at(-1)?.t ?? 0) + 1, largest(result.events.map((e) => e.t)));
  const x = (t: number): number => LEFT + (Math.min(Math.max(t, 0), domain) / domain) * (RIGHT - LEFT);
  const labels = placeLabels(result.events, x);
  const rows = labels.reduce((max, l) => Math.max(max, l.row + 1), 0);
  const top = 14 + rows * LABEL_ROW;
  const bottom = top + PLOT_HEIGHT;
  const height = bottom + 50;
  const yShare = (share: number): number => bottom - share * PLOT_HEIGHT;
  const errors = niceScale(largest(seconds.map((s) => sum(s.errors))), 4);
  const yErrors = (v: number): number => bottom - (v / errors.max) * PLOT_HEIGHT;
  const id = `chart-${index}`;
  const parts: string[] = [];

  parts.push(`<rect x="${LEFT}" y="${top}" width="${RIGHT - LEFT}" height="${PLOT_HEIGHT}" fill="${NONE_COLOUR}"/>`);

  // stacked step areas: cluster k spans from the share of the clusters before it to that plus its own share
  const shares = new Map(
    seconds.map((s) => {
      const total = sum(s.byCluster);
      let below = 0;
      const bands = new Map<string, [number, number]>();
      for (const c of clusters) {
        const share = total > 0 ? count(s.byCluster[c]) / total : 0;
        bands.set(c, [below, below + share]);
        below += share;
      }
      return [s, bands];
    }),
  );
  parts.push('<g class="areas">');
  for (const cluster of clusters) {
    const paths = runs(seconds, (s) => count(s.byCluster[cluster]) > 0).map((run) => {
      const band = (s: DrillSecond): [number, number] => shares.get(s)?.get(cluster) ?? [0, 0];
      const upper = run.flatMap((s) => [`${n(x(s.t))},${n(yShare(band(s)[1]))}`, `${n(x(s.t + 1))},${n(yShare(band(s)[1]))}`]);
      const lower = [...run].reverse().flatMap((s) => [`${n(x(s.t + 1))},${n(yShare(band(s)[0]))}`, `${n(x(s.t))},${n(yShare(band(s)[0]))}`]);
      return `M${[...upper, ...lower].join('L')}Z`;
    });
    if (paths.length === 0) continue;
    parts.push(`<path class="area" data-cluster="${esc(cluster)}" fill="${colours.get(cluster) ?? NONE_COLOUR}" d="${paths.join('')}"><title>${esc(cluster)}</title></path>`);
  }
  parts.push('</g>');

  // grid and axes
  parts.push('<g class="axes" font-size="11" fill="#444">');
  for (const share of [0, 0.25, 0.5, 0.75, 1]) {
    const y = n(yShare(share));
    parts.push(`<line x1="${LEFT}" x2="${RIGHT}" y1="${y}" y2="${y}" stroke="#fff" stroke-opacity="0.55"/>`);
    parts.push(`<text x="${LEFT - 6}" y="${y}" dy="0.32em" text-anchor="end">${share * 100}%</text>`);
  }
  for (const v of errors.ticks) parts.push(`<text x="${RIGHT + 6}" y="${n(yErrors(v))}" dy="0.32em">${v}</text>`);
  for (const t of timeTicks(domain)) {
    const at = n(x(t));
    parts.push(`<line x1="${at}" x2="${at}" y1="${bottom}" y2="${bottom + 5}" stroke="#444"/>`);
    parts.push(`<text x="${at}" y="${bottom + 17}" text-anchor="middle">${t}</text>`);
  }
  parts.push(`<line x1="${LEFT}" x2="${RIGHT}" y1="${bottom}" y2="${bottom}" stroke="#444"/>`);
  parts.push(`<line x1="${LEFT}" x2="${LEFT}" y1="${top}" y2="${bottom}" stroke="#444"/>`);
  parts.push(`<line x1="${RIGHT}" x2="${RIGHT}" y1="${top}" y2="${bottom}" stroke="#444"/>`);
  const middle = n(top + PLOT_HEIGHT / 2);
  parts.push(`<text x="${n((LEFT + RIGHT) / 2)}" y="${bottom + 38}" text-anchor="middle" font-size="12">seconds since the drill started</text>`);
  parts.push(`<text transform="translate(16 ${middle}) rotate(-90)" text-anchor="middle" font-size="12">traffic share by serving cluster</text>`);
  parts.push(`<text transform="translate(${WIDTH - 14} ${middle}) rotate(90)" text-anchor="middle" font-size="12">errors per second</text>`);
  parts.push('</g>');

  // errors per second, as steps, with a white halo to stand out on the areas
  const errorPath = runs(seconds, () => true)
    .map((run) => `M${run.flatMap((s) => [`${n(x(s.t))},${n(yErrors(sum(s.errors)))}`, `${n(x(s.t + 1))},${n(yErrors(sum(s.errors)))}`]).join('L')}`)
    .join('');
  if (errorPath !== '') {
    parts.push(
      `<g class="errors" fill="none" stroke-linejoin="round"><path d="${errorPath}" stroke="#fff" stroke-width="4"/>` +
        `<path d="${errorPath}" stroke="${ERROR_COLOUR}" stroke-width="2"/></g>`,
    );
  }

  // fault, restore, rollback and broken-expectation markers, labelled above the plot
  parts.push(`<g class="markers" font-size="${LABEL_FONT}" font-weight="600">`);
  for (const label of labels) {
    const marker = MARKERS[label.event.kind];
    const labelY = 12 + label.row * LABEL_ROW;
    const at = n(label.x);
    parts.push(
      `<g class="marker" data-kind="${label.event.kind}"><title>${esc(`${formatSeconds(label.event.t)} ${marker.name}: ${label.event.label}`)}</title>` +
        `<line x1="${at}" x2="${at}" y1="${labelY + 3}" y2="${bottom}" stroke="#fff" stroke-opacity="0.7" stroke-width="3.5"/>` +
        `<line x1="${at}" x2="${at}" y1="${labelY + 3}" y2="${bottom}" stroke="${marker.colour}" stroke-width="1.5" stroke-dasharray="${marker.dash}"/>` +
        `<text x="${n(label.anchor === 'start' ? label.x + 4 : label.x - 4)}" y="${labelY}" text-anchor="${label.anchor}" fill="${marker.colour}">${esc(label.text)}</text></g>`,
    );
  }
  parts.push('</g>');

  const clusterList = clusters.join(', ');
  const eventList = result.events.map((e) => `${MARKERS[e.kind].name} at ${formatSeconds(e.t)} (${e.label})`).join('; ');
  const description =
    `Share of the requests of stream ${stream.name} served by each cluster (${clusterList}), stacked from 0 to 100%, ` +
    `and failed requests per second (up to ${errors.max}), over ${formatSeconds(domain)}.` +
    (eventList === '' ? '' : ` Marked: ${eventList}.`);
  return (
    `<svg class="chart" role="img" aria-labelledby="${id}-title" aria-describedby="${id}-desc" viewBox="0 0 ${WIDTH} ${n(height)}" ` +
    `width="${WIDTH}" height="${n(height)}" font-family="system-ui, sans-serif" xmlns="http://www.w3.org/2000/svg">` +
    `<title id="${id}-title">Traffic share per cluster and errors: ${esc(stream.name)}</title><desc id="${id}-desc">${esc(description)}</desc>` +
    `${parts.join('')}</svg>`
  );
}

function swatch(colour: string): string {
  return `<svg width="14" height="14" aria-hidden="true"><rect width="14" height="14" rx="2" fill="${colour}"/></svg>`;
}

function lineSwatch(colour: string, dash: string | undefined, width: number): string {
  const dashed = dash === undefined ? '' : ` stroke-dasharray="${dash}"`;
  return `<svg width="24" height="14" aria-hidden="true"><line x1="0" x2="24" y1="7" y2="7" stroke="${colour}" stroke-width="${width}"${dashed}/></svg>`;
}

function legends(result: DrillResult, streamName: string, clusters: readonly string[], colours: Map<string, string>): string {
  const clusterItems = clusters.map((c) => `<li class="cluster" data-cluster="${esc(c)}">${swatch(colours.get(c) ?? NONE_COLOUR)}${esc(c)}</li>`);
  const kinds = [...new Set(result.events.map((e) => e.kind))].sort();
  const keyItems = [
    `<li>${lineSwatch(ERROR_COLOUR, undefined, 2)}errors per second</li>`,
    `<li>${swatch(NONE_COLOUR)}no request served</li>`,
    ...kinds.map((k) => `<li>${lineSwatch(MARKERS[k].colour, MARKERS[k].dash, 1.5)}${MARKERS[k].name}</li>`),
  ];
  return (
    `<div class="legends"><ul class="legend" aria-label="${esc(`Clusters serving ${streamName}`)}">${clusterItems.join('')}</ul>` +
    `<ul class="legend" aria-label="Lines and markers">${keyItems.join('')}</ul></div>`
  );
}

// --- the page ----------------------------------------------------------------------------------------------------

function totals(stream: DrillStream, clusters: readonly string[]): string {
  const served = clusters
    .map((c) => [c, stream.seconds.reduce((a, s) => a + count(s.byCluster[c]), 0)] as const)
    .filter(([, v]) => v > 0)
    .map(([c, v]) => `${esc(c)} ${v}`);
  const failed = new Map<string, number>();
  for (const s of stream.seconds) for (const [kind, v] of Object.entries(s.errors)) failed.set(kind, (failed.get(kind) ?? 0) + count(v));
  const failedText = [...failed].filter(([, v]) => v > 0).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([k, v]) => `${esc(k)} ${v}`);
  const p99 = largest(stream.seconds.map((s) => count(s.p99Ms)));
  return (
    `<dl class="facts"><dt>served</dt><dd>${served.length > 0 ? served.join(' · ') : 'none'}</dd>` +
    `<dt>failed</dt><dd>${failedText.length > 0 ? failedText.join(' · ') : 'none'}</dd>` +
    `<dt>worst p99 latency</dt><dd>${p99 > 0 ? `${Number(p99.toFixed(1))} ms` : '—'}</dd></dl>`
  );
}

function dataTable(stream: DrillStream, clusters: readonly string[]): string {
  const head = `<tr><th class="num">second</th>${clusters.map((c) => `<th class="num">${esc(c)}</th>`).join('')}<th class="num">errors</th><th class="num">p50</th><th class="num">p99</th></tr>`;
  const latency = (ms: number | undefined): string => (ms === undefined || !Number.isFinite(ms) ? '—' : `${Number(ms.toFixed(1))} ms`);
  const rows = [...stream.seconds]
    .sort((a, b) => a.t - b.t)
    .map((s) => {
      const errors = Object.entries(s.errors)
        .filter(([, v]) => count(v) > 0)
        .map(([k, v]) => `${esc(k)} ${v}`)
        .join(', ');
      return `<tr><td class="num">${s.t}</td>${clusters.map((c) => `<td class="num">${count(s.byCluster[c])}</td>`).join('')}<td class="num">${errors === '' ? '0' : errors}</td><td class="num">${latency(s.p50Ms)}</td><td class="num">${latency(s.p99Ms)}</td></tr>`;
    });
  return `<details><summary>Requests per second</summary><table><thead>${head}</thead><tbody>${rows.join('')}</tbody></table></details>`;
}

const VIA: Record<DrillStream['via'], string> = { xds: 'proxyless gRPC over xDS', dns: "HTTP to the VIP meshfed's DNS answers" };

function streamSection(result: DrillResult, stream: DrillStream, index: number, clusters: readonly string[], colours: Map<string, string>): string {
  return (
    `<section class="stream" aria-labelledby="stream-${index}"><h3 id="stream-${index}">${esc(stream.name)}</h3>` +
    `<p class="meta">Clients in <strong>${esc(stream.from)}</strong> calling <code>${esc(stream.to)}</code> through ${VIA[stream.via]}.</p>` +
    `<figure>${chart(result, stream, index, clusters, colours)}${legends(result, stream.name, clusters, colours)}</figure>` +
    `${totals(stream, clusters)}${dataTable(stream, clusters)}</section>`
  );
}

function shiftsTable(result: DrillResult): string {
  if (result.shifts.length === 0) return '<p>No shift was measured.</p>';
  const rows = result.shifts.map(
    (s) =>
      `<tr><td>${esc(s.stream)}</td><td>${esc(s.fault)}</td><td class="num">${formatMs(s.timeToDetectMs)}</td><td class="num">${formatMs(s.timeToShiftMs)}</td>` +
      `<td class="num">${count(s.failedDuringShift)}</td><td class="num">${formatMs(s.timeToFailBackMs)}</td></tr>`,
  );
  return (
    '<table class="shifts"><thead><tr><th>stream</th><th>step</th><th class="num">time to detect</th><th class="num">time to shift</th>' +
    `<th class="num">failed requests</th><th class="num">time to fail back</th></tr></thead><tbody>${rows.join('')}</tbody></table>`
  );
}

function expectationsTable(result: DrillResult): string {
  if (result.expectations.length === 0) return '<p>The scenario states no expectation.</p>';
  const rows = result.expectations.map(
    (e) => `<tr><td class="${e.passed ? 'ok' : 'bad'}">${e.passed ? '✓ passed' : '✗ failed'}</td><td>${esc(e.name)}</td><td class="detail">${esc(e.detail)}</td></tr>`,
  );
  return `<table class="expectations"><thead><tr><th>result</th><th>expectation</th><th>measured</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

function eventsTable(result: DrillResult): string {
  if (result.events.length === 0) return '<p>Nothing happened on the timeline.</p>';
  const rows = [...result.events]
    .sort((a, b) => a.t - b.t)
    .map((e) => `<tr><td class="num">${formatSeconds(e.t)}</td><td>${MARKERS[e.kind].name}</td><td>${esc(e.label)}</td></tr>`);
  return `<table class="events"><thead><tr><th class="num">at</th><th>what</th><th>step</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

function trafficSections(result: DrillResult, clusters: readonly string[]): string {
  const colours = clusterColours(clusters);
  return result.streams.map((stream, i) => streamSection(result, stream, i, clusters, colours)).join('\n');
}

/**
 * The report's traffic sections alone (per stream: the chart, its legends, totals and the numbers), an HTML fragment
 * with no style of its own, for pages that show a drill among other things (the dashboard).
 */
export function drillTrafficHtml(result: DrillResult): string {
  return trafficSections(result, legendClusters(result));
}

export function drillHtml(result: DrillResult): string {
  const clusters = legendClusters(result);
  const failed = result.expectations.filter((e) => !e.passed).length;
  const verdict = result.passed ? 'passed' : 'failed';
  const banner = result.passed
    ? `Passed: every expectation held (${result.expectations.length} of ${result.expectations.length}).`
    : `Failed: ${failed} of ${result.expectations.length} expectations did not hold.`;
  const facts = [
    ...(result.scenario === undefined ? [] : [['scenario', `<code>${esc(result.scenario)}</code>`]]),
    ['started', esc(result.startedAt)],
    ['duration', formatSeconds(result.durationSeconds)],
    ['clusters', clusters.map(esc).join(', ')],
  ];
  return [
    '<!DOCTYPE html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    `<meta http-equiv="Content-Security-Policy" content="${CSP}">`,
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    '<meta name="generator" content="meshfed">',
    `<title>Drill ${esc(result.name)}: ${verdict}</title>`,
    `<style>${STYLE}</style>`,
    '</head>',
    '<body>',
    `<header><h1>Failover drill: ${esc(result.name)}</h1>`,
    `<dl class="facts">${facts.map(([k, v]) => `<dt>${k}</dt><dd>${v}</dd>`).join('')}</dl>`,
    `<p class="banner ${result.passed ? 'pass' : 'fail'}">${banner}</p></header>`,
    '<main>',
    `<section aria-labelledby="shifts"><h2 id="shifts">Shifts</h2>${shiftsTable(result)}</section>`,
    `<section aria-labelledby="expectations"><h2 id="expectations">Expectations</h2>${expectationsTable(result)}</section>`,
    `<section aria-labelledby="streams"><h2 id="streams">Traffic</h2>`,
    trafficSections(result, clusters),
    '</section>',
    `<section aria-labelledby="timeline"><h2 id="timeline">Timeline</h2>${eventsTable(result)}</section>`,
    '</main>',
    '<footer>Made by meshfed from the drill’s measurements; works offline.</footer>',
    '</body>',
    '</html>',
    '',
  ].join('\n');
}
