/**
 * The dashboard at `/`: static files from the package's dashboard/ folder (an HTML page, a stylesheet and ES
 * modules; no bundler). It is open like /healthz: the page holds no data, it asks for the API token and reads
 * /api/v1 with it. Everything is same-origin, so the page runs under `default-src 'self'` with no inline script
 * or style; it sends that policy itself too.
 */
import { resolve } from 'node:path';
import express, { Router } from 'express';

/** dashboard/ at the package root: two levels up from src/api/ (tests) and from dist/api/ (the installed package). */
export const DASHBOARD_DIR = resolve(import.meta.dirname, '../../dashboard');

const CSP = "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'";

/** The page and its assets; anything else in the folder (its tsconfig.json) is not served. */
const ASSET = /^\/(?:[a-z][a-z0-9-]*\.(?:html|js|css|svg))?$/;

export function dashboardRouter(): Router {
  const router = Router();
  const files = express.static(DASHBOARD_DIR, {
    index: 'index.html',
    redirect: false,
    dotfiles: 'ignore',
    setHeaders: (res, path) => {
      res.setHeader('Cache-Control', 'no-cache');
      if (path.endsWith('.html')) {
        res.setHeader('Content-Security-Policy', CSP);
        res.setHeader('Referrer-Policy', 'no-referrer');
      }
    },
  });
  router.use((req, res, next) => {
    if (ASSET.test(req.path)) files(req, res, next);
    else next();
  });
  return router;
}
