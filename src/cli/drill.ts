import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { Command } from 'commander';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { writeDrillReports } from '../drills/report.js';
import type { DrillResult } from '../drills/result.js';
import { loadScenarioFile, ScenarioError, type Scenario } from '../drills/scenario.js';
import { ApiCallError, call, connection, DEFAULT_SERVER, SERVER_ENV, withServerOptions, type Connection } from './api-client.js';
import { UsageError } from './errors.js';

/** how often a running drill is asked how it goes */
const POLL_MS = 250;
/** without a terminal, a progress line at most this often (and at every event) */
const PLAIN_EVERY_S = 5;
/** how long an embedded federation may take to come up */
const SERVE_START_MS = 60_000;

const secondView = z.object({ byCluster: z.record(z.string(), z.number()), errors: z.record(z.string(), z.number()) });
const progressView = z.object({
  t: z.number(),
  durationSeconds: z.number(),
  step: z.string().optional(),
  streams: z.array(z.object({ name: z.string(), second: secondView })),
  events: z.array(z.object({ t: z.number(), kind: z.string(), label: z.string() })),
});
type ProgressView = z.infer<typeof progressView>;

const runView = z.looseObject({
  id: z.string(),
  name: z.string(),
  state: z.enum(['running', 'passed', 'failed', 'error']),
  progress: progressView.optional(),
  result: z.unknown().optional(),
  error: z.string().optional(),
});
type RunView = z.infer<typeof runView>;

function parseRun(data: unknown, what: string): RunView {
  const parsed = runView.safeParse(data);
  if (!parsed.success) throw new ApiCallError(`unexpected answer to ${what}: ${parsed.error.issues[0]?.message ?? 'not a drill'}`);
  return parsed.data;
}

/** `east-2 97% west-1 3%, 2 errors` for one stream's last second */
function split(second: z.infer<typeof secondView>): string {
  const served = Object.values(second.byCluster).reduce((a, b) => a + b, 0);
  const errors = Object.values(second.errors).reduce((a, b) => a + b, 0);
  const shares = Object.entries(second.byCluster)
    .filter(([, n]) => n > 0)
    .sort(([, a], [, b]) => b - a)
    .map(([cluster, n]) => `${cluster} ${String(Math.round((100 * n) / Math.max(1, served)))}%`);
  return `${shares.join(' ') || 'nothing served'}${errors > 0 ? `, ${String(errors)} error${errors === 1 ? '' : 's'}` : ''}`;
}

function progressLine(p: ProgressView): string {
  const streams = p.streams.map((s) => `${s.name}: ${split(s.second)}`).join(' | ');
  return `${String(Math.floor(p.t))}/${String(p.durationSeconds)} s${p.step ? ` [${p.step}]` : ''} ${streams}`;
}

const formatMs = (ms: number | undefined): string => (ms === undefined ? '-' : ms < 1000 ? `${String(Math.round(ms))} ms` : `${(ms / 1000).toFixed(2)} s`);

function summary(result: DrillResult): string {
  const lines = [`drill ${result.name}: ${result.passed ? 'PASSED' : 'FAILED'} (${String(result.durationSeconds)} s)`];
  for (const e of result.expectations) lines.push(`  ${e.passed ? 'ok  ' : 'FAIL'} ${e.name}: ${e.detail}`);
  for (const s of result.shifts) {
    lines.push(`  ${s.stream} after ${s.fault}: detect ${formatMs(s.timeToDetectMs)}, shift ${formatMs(s.timeToShiftMs)}, fail back ${formatMs(s.timeToFailBackMs)}, ${String(s.failedDuringShift)} failed`);
  }
  return `${lines.join('\n')}\n`;
}

/** The live display: one rewritten line on a terminal, plain lines (at events and every few seconds) otherwise. */
function progressPrinter(): { show(p: ProgressView): void; end(): void } {
  const tty = process.stdout.isTTY;
  let events = 0;
  let lastPlain = -Infinity;
  return {
    show(p) {
      for (const e of p.events.slice(events)) process.stdout.write(`${tty ? '\r\x1b[K' : ''}${e.t.toFixed(1)} s  ${e.kind}: ${e.label}\n`);
      events = p.events.length;
      if (tty) process.stdout.write(`\r\x1b[K${progressLine(p).slice(0, Math.max(20, (process.stdout.columns || 120) - 1))}`);
      else if (p.t - lastPlain >= PLAIN_EVERY_S) {
        process.stdout.write(`${progressLine(p)}\n`);
        lastPlain = p.t;
      }
    },
    end() {
      if (tty) process.stdout.write('\r\x1b[K');
    },
  };
}

interface Embedded {
  server: string;
  token: string;
  stop(): Promise<void>;
}

/** `meshfed serve` for the scenario's federation file, on free ports, with its workloads, in a state dir of its own. */
async function startEmbedded(federation: string, graceMs: number | undefined): Promise<Embedded> {
  const stateDir = mkdtempSync(join(tmpdir(), 'meshfed-drill-'));
  const main = process.argv[1] ?? '';
  const args = [main, 'serve', '--config', federation, '--workloads', '--state-dir', stateDir, '--api', '127.0.0.1:0', '--xds', '127.0.0.1:0', '--dns', '127.0.0.1:0', '--ca-listen', '127.0.0.1:0'];
  if (graceMs !== undefined) args.push('--grace', `${String(graceMs / 1000)}s`);
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, MESHFED_LOG_LEVEL: 'warn' } });
  let out = '';
  let err = '';
  child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
  const exited = new Promise<void>((done) => child.once('exit', () => { done(); }));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null) child.kill('SIGINT');
    await exited;
    rmSync(stateDir, { recursive: true, force: true });
  };
  try {
    await new Promise<void>((done, fail) => {
      const timer = setTimeout(() => { fail(new Error(`no summary within ${String(SERVE_START_MS / 1000)} s`)); }, SERVE_START_MS);
      child.stdout.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        if (out.includes('Ctrl-C stops')) {
          clearTimeout(timer);
          done();
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        fail(new Error(`exited with ${String(code)}: ${err.trim().split('\n').at(-1) ?? ''}`));
      });
    });
  } catch (error) {
    await stop();
    throw new ApiCallError(`could not run the federation ${federation}: ${(error as Error).message}`);
  }
  const server = /API {12}(http:\/\/127\.0\.0\.1:\d+)/.exec(out)?.[1] ?? '';
  return { server, token: readFileSync(join(stateDir, 'api-token'), 'utf8').trim(), stop };
}

/** Whether a meshfed answers /healthz at `server` (bounded). */
async function answers(server: string): Promise<boolean> {
  try {
    return (await fetch(new URL('/healthz', server), { signal: AbortSignal.timeout(1_000) })).ok;
  } catch {
    return false;
  }
}

async function follow(conn: Connection, document: unknown): Promise<RunView> {
  const { data } = await call(conn, 'POST', '/api/v1/drills', document);
  let run = parseRun(data, 'the drill');
  process.stdout.write(`drill ${run.name} (${run.id}) running against ${conn.server.origin}\n`);
  const printer = progressPrinter();
  const stop = (): void => {
    printer.end();
    process.stdout.write('interrupted: the drill keeps running in the manager, which restores its faults at its end\n');
    process.exit(130);
  };
  process.once('SIGINT', stop);
  try {
    while (run.state === 'running') {
      await new Promise((done) => setTimeout(done, POLL_MS));
      run = parseRun((await call(conn, 'GET', `/api/v1/drills/${run.id}`)).data, 'the drill');
      if (run.progress) printer.show(run.progress);
    }
  } finally {
    process.removeListener('SIGINT', stop);
    printer.end();
  }
  return run;
}

export function drillCommand(): Command {
  const drill = withServerOptions(new Command('drill').description('failover drills: take a cluster, zone or gateway out and measure how traffic moves (scenarios/README.md)'));

  drill
    .command('run')
    .description("run a scenario against a running meshfed (--server, or the scenario's target.server) or a federation file it starts on free ports (target.federation); exit 0 when every expectation held")
    .argument('<scenario>', 'a FailoverDrill file (scenarios/*.yaml)')
    .option('--report <dir>', 'write the reports there: drill.json, junit.xml, report.html')
    .option('--allow-disruptive', 'allow faults that change real clusters through their Kubernetes API (kill-workloads scales Deployments to zero, kill-gateway deletes gateway pods); without it such a drill is refused before anything changes')
    .action(async function (this: Command, file: string, opts: { report?: string; allowDisruptive?: boolean }) {
      let scenario: Scenario;
      try {
        scenario = loadScenarioFile(file);
      } catch (error) {
        if (error instanceof ScenarioError) throw new UsageError(error.message);
        throw error;
      }
      const scenarioDocument: unknown = parseYaml(readFileSync(file, 'utf8'));
      // the consent goes beside the document, never into it: a scenario file cannot carry it (its schema refuses the field)
      const document = opts.allowDisruptive === true && typeof scenarioDocument === 'object' && scenarioDocument !== null ? { ...scenarioDocument, allowDisruptive: true } : scenarioDocument;
      const flags = this.optsWithGlobals<{ server?: string }>();
      const chosen = flags.server ?? (process.env[SERVER_ENV] || undefined);
      const target = scenario.target;
      let embedded: Embedded | undefined;
      // a meshfed already running where the CLI looks by default (npm start) is the federation's: drill it, don't start another
      if (chosen === undefined && target !== undefined && 'federation' in target && !(await answers(DEFAULT_SERVER))) {
        const federation = resolve(dirname(file), target.federation);
        process.stdout.write(`starting the federation ${federation} on free ports\n`);
        embedded = await startEmbedded(federation, target.graceMs);
      } else if (chosen === undefined && target !== undefined && 'server' in target) {
        this.setOptionValueWithSource('server', target.server, 'cli');
      }
      let run: RunView;
      try {
        run = await follow(embedded ? { server: new URL(embedded.server), token: embedded.token } : connection(this), document);
      } finally {
        await embedded?.stop();
      }
      if (run.state === 'error' || run.result === undefined) throw new ApiCallError(`the drill could not run: ${run.error ?? 'no result'}`);
      // the manager knows the scenario as a request body; the reports name its file
      const result: DrillResult = { ...(run.result as DrillResult), scenario: file };
      process.stdout.write(summary(result));
      if (opts.report !== undefined) {
        const paths = writeDrillReports(result, opts.report);
        process.stdout.write(`reports: ${paths.html}, ${paths.junit}, ${paths.json}\n`);
      }
      if (!result.passed) process.exitCode = 1;
    });

  drill
    .command('get')
    .description('a drill of the running meshfed: state, progress, result (JSON)')
    .argument('<id>', 'the id drill run printed')
    .action(async function (this: Command, id: string) {
      const { data } = await call(connection(this), 'GET', `/api/v1/drills/${encodeURIComponent(id)}`);
      process.stdout.write(`${JSON.stringify(data, null, 2)}\n`);
    });

  return drill;
}
