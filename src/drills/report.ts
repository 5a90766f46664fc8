/**
 * A drill's reports: the measurements as JSON, JUnit XML for CI systems, and a self-contained HTML page with charts.
 * The renderers are pure; `writeDrillReports` puts all three in a directory.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { drillHtml } from './report-html.js';
import { drillJunit } from './report-junit.js';
import type { DrillResult } from './result.js';

export { drillHtml } from './report-html.js';
export { drillJunit } from './report-junit.js';

export function drillJson(result: DrillResult): string {
  return `${JSON.stringify(result, null, 2)}\n`;
}

export interface DrillReportPaths {
  json: string;
  junit: string;
  html: string;
}

/** Writes drill.json, junit.xml and report.html into `dir` (created if needed) and returns their paths. */
export function writeDrillReports(result: DrillResult, dir: string): DrillReportPaths {
  mkdirSync(dir, { recursive: true });
  const paths = { json: join(dir, 'drill.json'), junit: join(dir, 'junit.xml'), html: join(dir, 'report.html') };
  writeFileSync(paths.json, drillJson(result));
  writeFileSync(paths.junit, drillJunit(result));
  writeFileSync(paths.html, drillHtml(result));
  return paths;
}
