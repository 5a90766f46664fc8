/**
 * GET /api/v1/trust: the trust domain as `meshfed ca status` shows it — its roots, the intermediate of every cluster
 * (expiry, renewal point, whether the cluster has been given it), and where a root rotation stands. Certificates'
 * public facts only: no key, no PEM, no token secret.
 */
import { Router } from 'express';
import type { IntermediateStatus, RotationStatus, TrustAuthority } from '../trust/authority.js';
import { subjectKeyIdHex } from '../trust/x509.js';
import { ApiError, sendError } from './errors.js';

export interface RootInfo {
  /** the subject key identifier, hex: the id rotation steps name */
  id: string;
  subject: string;
  serial: string;
  notBefore: string;
  notAfter: string;
  /** the root that signs new intermediates */
  active: boolean;
  /** its key is kept outside the state dir */
  offline: boolean;
}

export interface TrustInfo {
  trustDomain: string;
  bundleSequence: number;
  activeRootId: string;
  roots: RootInfo[];
  intermediates: IntermediateStatus[];
  rotation: RotationStatus;
}

export function trustInfo(authority: TrustAuthority): TrustInfo {
  const activeRootId = authority.activeRootId;
  return {
    trustDomain: authority.trustDomain,
    bundleSequence: authority.bundleSequence,
    activeRootId,
    roots: authority.roots().map((cert) => {
      const id = subjectKeyIdHex(cert);
      return {
        id,
        subject: cert.subject.replace(/\n/g, ', '),
        serial: cert.serialNumber,
        notBefore: new Date(cert.validFrom).toISOString(),
        notAfter: new Date(cert.validTo).toISOString(),
        active: id === activeRootId,
        offline: authority.isOfflineRoot(id),
      };
    }),
    intermediates: authority.intermediates(),
    rotation: authority.rotationStatus(),
  };
}

export function trustRouter(authority: TrustAuthority): Router {
  const router = Router();
  router
    .route('/trust')
    .get((_req, res) => {
      res.json(trustInfo(authority));
    })
    .all((req, res) => {
      res.set('Allow', 'GET');
      sendError(res, new ApiError(405, 'method_not_allowed', `${req.method} is not allowed on /api/v1/trust: use GET (rotation is "meshfed ca rotate")`));
    });
  return router;
}
