/**
 * The drills of one manager: at most one running at a time, against the world the manager was given (the embedded
 * federation of `meshfed serve --workloads`), followed by id; the last finished runs are kept for GET.
 */
import { randomUUID } from 'node:crypto';
import { SILENT_LOGGER, type Logger } from '../logging.js';
import { DrillError, runDrill, checkScenarioAgainstWorld, type DrillProgress } from './engine.js';
import type { DrillResult } from './result.js';
import { parseScenario, ScenarioError } from './scenario.js';
import type { DrillWorld, FaultOptions } from './world.js';

export type DrillState = 'running' | 'passed' | 'failed' | 'error';

export interface DrillRunView {
  id: string;
  name: string;
  state: DrillState;
  startedAt: string;
  /** what the drill is doing now (while running) */
  progress?: DrillProgress;
  /** once it ended (passed or failed) */
  result?: DrillResult;
  /** why it could not run to its end (state error) */
  error?: string;
}

/** A scenario the service refuses; the message names the document's field. */
export class DrillInputError extends Error {}

/** A drill is already running. */
export class DrillBusyError extends Error {}

export interface DrillService {
  /**
   * validates and starts a drill; throws DrillInputError for a bad scenario (or a fault `options` do not allow),
   * DrillBusyError while one runs
   */
  start(document: unknown, options?: FaultOptions): DrillRunView;
  get(id: string): DrillRunView | undefined;
  list(): DrillRunView[];
}

/** finished runs kept for GET */
const KEEP_FINISHED = 20;

export class DrillRunner implements DrillService {
  readonly #log: Logger;
  readonly #runs = new Map<string, DrillRunView>();
  #world: DrillWorld | undefined;
  #running: { id: string; abort: AbortController; done: Promise<void> } | undefined;

  constructor(logger: Logger = SILENT_LOGGER) {
    this.#log = logger;
  }

  /** The world drills act on; without one, drills are refused with the reason. */
  attach(world: DrillWorld | undefined): void {
    this.#world = world;
  }

  start(document: unknown, options: FaultOptions = { allowDisruptive: false }): DrillRunView {
    const world = this.#world;
    if (!world) throw new DrillInputError('this manager runs no simulated clusters to drill: start it with a federation file and --workloads (npm start does)');
    if (this.#running) throw new DrillBusyError(`drill ${this.#running.id} is running: one drill at a time`);
    let scenario;
    try {
      // JSON is YAML: the document goes through the same parser and errors as a scenario file
      scenario = parseScenario(JSON.stringify(document));
      checkScenarioAgainstWorld(scenario, world, options);
    } catch (error) {
      if (error instanceof ScenarioError) throw new DrillInputError(error.message);
      throw error;
    }
    const id = randomUUID();
    const view: DrillRunView = { id, name: scenario.name, state: 'running', startedAt: new Date().toISOString() };
    this.#runs.set(id, view);
    const abort = new AbortController();
    this.#log.info({ drill: id, scenario: scenario.name, allowDisruptive: options.allowDisruptive }, 'drill started');
    const done = runDrill(scenario, world, {
      signal: abort.signal,
      allowDisruptive: options.allowDisruptive,
      onProgress: (progress) => {
        view.progress = progress;
      },
    }).then(
      (result) => {
        view.result = result;
        view.state = result.passed ? 'passed' : 'failed';
        delete view.progress;
        this.#log.info({ drill: id, scenario: scenario.name, passed: result.passed }, 'drill ended');
      },
      (error: unknown) => {
        view.state = 'error';
        view.error = error instanceof Error ? error.message : String(error);
        delete view.progress;
        this.#log.warn({ drill: id, scenario: scenario.name, err: { message: view.error }, applied: !(error instanceof DrillError) }, 'drill could not run');
      },
    );
    this.#running = {
      id,
      abort,
      done: done.finally(() => {
        this.#running = undefined;
        this.#forgetOld();
      }),
    };
    return view;
  }

  get(id: string): DrillRunView | undefined {
    return this.#runs.get(id);
  }

  list(): DrillRunView[] {
    return [...this.#runs.values()].reverse();
  }

  /** Ends a running drill early (its faults restored) and waits for it. */
  async close(): Promise<void> {
    const running = this.#running;
    if (!running) return;
    running.abort.abort();
    await running.done;
  }

  #forgetOld(): void {
    const finished = [...this.#runs.values()].filter((run) => run.state !== 'running');
    for (const run of finished.slice(0, Math.max(0, finished.length - KEEP_FINISHED))) this.#runs.delete(run.id);
  }
}
