/**
 * A drill as JUnit XML, so CI systems can run drills: one <testsuite> named after the drill, one <testcase> per
 * expectation, a <failure> where it did not hold, and the timeline and shift measurements as the suite's output.
 */
import type { DrillResult } from './result.js';

/** Code points XML 1.0 cannot carry, not even as character references: they become U+FFFD. */
function isXmlChar(code: number): boolean {
  if (code === 0x9 || code === 0xa || code === 0xd) return true;
  if (code < 0x20) return false;
  if (code >= 0xd800 && code <= 0xdfff) return false; // a lone surrogate: for..of yields paired ones as one code point
  return code !== 0xfffe && code !== 0xffff;
}

const ENTITIES: ReadonlyMap<string, string> = new Map([
  ['&', '&amp;'],
  ['<', '&lt;'],
  ['>', '&gt;'],
  ['"', '&quot;'],
  ["'", '&#39;'],
]);

/** Escapes text for XML and HTML, in element content and in quoted attribute values alike. */
export function escapeXml(text: string): string {
  let out = '';
  for (const ch of text) {
    if (!isXmlChar(ch.codePointAt(0) ?? 0)) out += '\uFFFD';
    else out += ENTITIES.get(ch) ?? ch;
  }
  return out;
}

/** Attribute values also keep their line breaks and tabs, which XML parsers would otherwise turn into spaces. */
function escapeAttribute(text: string): string {
  return escapeXml(text).replace(/[\t\n\r]/g, (ch) => `&#${ch.charCodeAt(0)};`);
}

/** A duration for people: "850 ms", "1.45 s", or "—" when it was not measured. */
export function formatMs(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms)) return '—';
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

/** Seconds on the drill's timeline: "10.2 s". */
export function formatSeconds(t: number): string {
  return `${Number.isFinite(t) ? Number(t.toFixed(1)) : 0} s`;
}

/** The JUnit timestamp: ISO 8601 without a time zone (the schema forbids one), in UTC; absent when unparsable. */
function junitTimestamp(startedAt: string): string | undefined {
  const time = Date.parse(startedAt);
  return Number.isNaN(time) ? undefined : new Date(time).toISOString().slice(0, 19);
}

function suiteOutput(result: DrillResult): string {
  const lines = [`drill ${result.name}: ${result.passed ? 'passed' : 'failed'}`];
  if (result.events.length > 0) lines.push('events:', ...result.events.map((e) => `  ${formatSeconds(e.t)}  ${e.kind}  ${e.label}`));
  if (result.shifts.length > 0) {
    lines.push(
      'shifts:',
      ...result.shifts.map(
        (s) =>
          `  ${s.stream} / ${s.fault}: detected ${formatMs(s.timeToDetectMs)}, shifted ${formatMs(s.timeToShiftMs)}, ` +
          `${s.failedDuringShift} failed during the shift, failed back ${formatMs(s.timeToFailBackMs)}`,
      ),
    );
  }
  return lines.join('\n');
}

export function drillJunit(result: DrillResult): string {
  const tests = result.expectations.length;
  const failures = result.expectations.filter((e) => !e.passed).length;
  const time = Number.isFinite(result.durationSeconds) ? result.durationSeconds.toFixed(3) : '0.000';
  const timestamp = junitTimestamp(result.startedAt);
  const name = escapeAttribute(result.name);
  const lines = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites name="meshfed drills" tests="${tests}" failures="${failures}" errors="0" time="${time}">`,
    `  <testsuite name="${name}" tests="${tests}" failures="${failures}" errors="0" skipped="0" time="${time}"` +
      `${timestamp === undefined ? '' : ` timestamp="${timestamp}"`}>`,
    '    <properties>',
    ...(result.scenario === undefined ? [] : [`      <property name="scenario" value="${escapeAttribute(result.scenario)}"/>`]),
    `      <property name="startedAt" value="${escapeAttribute(result.startedAt)}"/>`,
    `      <property name="clusters" value="${escapeAttribute(result.clusters.join(','))}"/>`,
    '    </properties>',
  ];
  for (const expectation of result.expectations) {
    lines.push(`    <testcase name="${escapeAttribute(expectation.name)}" classname="${name}">`);
    if (expectation.passed) lines.push(`      <system-out>${escapeXml(expectation.detail)}</system-out>`);
    else lines.push(`      <failure type="ExpectationFailed" message="${escapeAttribute(expectation.detail)}">${escapeXml(expectation.detail)}</failure>`);
    lines.push('    </testcase>');
  }
  lines.push(`    <system-out>${escapeXml(suiteOutput(result))}</system-out>`, '  </testsuite>', '</testsuites>', '');
  return lines.join('\n');
}
