/**
 * /api/v1/drills: POST a FailoverDrill document (the scenario file's YAML, as JSON) to run it against this manager's
 * world → 202 with the run's id; GET /api/v1/drills/ID follows it (state, live progress, and the DrillResult once it
 * ended); GET /api/v1/drills lists the runs of this process. One drill runs at a time (409 while one runs).
 * GET /api/v1/drills/ID/report.html is the drill's HTML report (what `drill run --report` writes) once it ended;
 * GET /api/v1/drills/ID/traffic.html its traffic sections alone (charts and legends), which the dashboard shows.
 * `allowDisruptive: true` beside the document's fields (never inside a scenario file) allows the faults that change
 * real clusters through their Kubernetes API (what `drill run --allow-disruptive` sends); without it they are
 * refused (400) before anything changes.
 */
import { Router, json } from 'express';
import { drillHtml, drillTrafficHtml } from '../drills/report-html.js';
import type { DrillResult } from '../drills/result.js';
import { DrillBusyError, DrillInputError, type DrillRunView, type DrillService } from '../drills/runner.js';
import { ApiError, sendError } from './errors.js';

/** The operator's consent to disruptive faults, taken out of the body; what is left is the FailoverDrill document. */
function splitConsent(body: unknown): { document: unknown; allowDisruptive: boolean } {
  if (typeof body !== 'object' || body === null || Array.isArray(body) || !('allowDisruptive' in body)) return { document: body, allowDisruptive: false };
  const { allowDisruptive, ...document } = body as Record<string, unknown>;
  if (typeof allowDisruptive !== 'boolean') throw new ApiError(400, 'invalid', 'allowDisruptive: must be true or false', 'allowDisruptive');
  return { document, allowDisruptive };
}

export function drillsRouter(service: DrillService, bodyLimitBytes: number): Router {
  const router = Router();
  router
    .route('/drills')
    .get((_req, res) => {
      res.json({ drills: service.list().map(({ result, ...run }) => ({ ...run, ...(result ? { passed: result.passed } : {}) })) });
    })
    .post(json({ limit: bodyLimitBytes, strict: true }), (req, res) => {
      if (!req.is('application/json')) throw new ApiError(415, 'unsupported_media_type', 'send the FailoverDrill document as JSON, with Content-Type: application/json');
      const { document, allowDisruptive } = splitConsent(req.body);
      let run: DrillRunView;
      try {
        run = service.start(document, { allowDisruptive });
      } catch (error) {
        if (error instanceof DrillInputError) throw new ApiError(400, 'invalid', error.message);
        if (error instanceof DrillBusyError) throw new ApiError(409, 'conflict', error.message);
        throw error;
      }
      res.status(202).location(`/api/v1/drills/${run.id}`).json(run);
    })
    .all((req, res) => {
      res.set('Allow', 'GET, POST');
      sendError(res, new ApiError(405, 'method_not_allowed', `${req.method} is not allowed on /api/v1/drills: use GET or POST`));
    });
  router
    .route('/drills/:id')
    .get((req, res) => {
      const run = service.get(req.params.id);
      if (!run) throw new ApiError(404, 'not_found', `no drill ${req.params.id.slice(0, 64)} in this manager`);
      res.json(run);
    })
    .all((req, res) => {
      res.set('Allow', 'GET');
      sendError(res, new ApiError(405, 'method_not_allowed', `${req.method} is not allowed on a drill: use GET`));
    });
  const ended = (id: string): DrillResult => {
    const run = service.get(id);
    if (!run) throw new ApiError(404, 'not_found', `no drill ${id.slice(0, 64)} in this manager`);
    if (!run.result) throw new ApiError(409, 'conflict', run.state === 'running' ? `drill ${run.id} is still running: its report comes when it ends` : `drill ${run.id} ended without a result (${run.state})`);
    return run.result;
  };
  for (const [file, render] of [['report.html', drillHtml], ['traffic.html', drillTrafficHtml]] as const) {
    router
      .route(`/drills/:id/${file}`)
      .get((req, res) => {
        res.type('html').send(render(ended(req.params.id)));
      })
      .all((req, res) => {
        res.set('Allow', 'GET');
        sendError(res, new ApiError(405, 'method_not_allowed', `${req.method} is not allowed on a drill report: use GET`));
      });
  }
  return router;
}
