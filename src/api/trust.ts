/**
 * GET /api/v1/trust: the trust domain as `meshfed ca status` shows it — its roots, the intermediate of every cluster
 * (expiry, renewal point, whether the cluster has been given it), and where a root rotation stands. Certificates'
 * public facts only: no key, no PEM, no token secret.
 * POST /api/v1/trust/rotation {"action": "start" | "advance" | "abort"}: one root rotation step, as
 * `meshfed ca rotate` does on a state dir. In Kubernetes mode only the leader changes the CA: another replica
 * answers 503 naming the leader (also in the Meshfed-Leader header), and the client sends the step there.
 */
import { Router, json } from 'express';
import { z } from 'zod';
import { NotLeaderError } from '../store/kubernetes/secret-trust.js';
import { TrustError, type IntermediateStatus, type RotationStatus, type TrustAuthority } from '../trust/authority.js';
import { subjectKeyIdHex } from '../trust/x509.js';
import { ApiError, sendError } from './errors.js';

export const rotationRequestSchema = z.strictObject({ action: z.enum(['start', 'advance', 'abort']) });

/** How the API changes the CA: directly (file mode), or through the Kubernetes-mode leader. */
export interface TrustWriter {
  change<T>(what: string, apply: (authority: TrustAuthority) => T): Promise<T>;
}

/** The file-mode writer: the authority commits to its state dir itself. */
export const directTrustWriter = (authority: TrustAuthority): TrustWriter => ({
  change: <T>(_what: string, apply: (authority: TrustAuthority) => T): Promise<T> => Promise.resolve(apply(authority)),
});

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

export function trustRouter(authority: TrustAuthority, writer: TrustWriter = directTrustWriter(authority)): Router {
  const router = Router();
  router
    .route('/trust/rotation')
    .post(json({ limit: 1024, strict: true }), async (req, res) => {
      if (!req.is('application/json')) throw new ApiError(415, 'unsupported_media_type', 'send {"action": "start" | "advance" | "abort"} as JSON, with Content-Type: application/json');
      const parsed = rotationRequestSchema.safeParse(req.body);
      if (!parsed.success) throw new ApiError(400, 'invalid', 'the body must be {"action": "start" | "advance" | "abort"}', 'action');
      const { action } = parsed.data;
      try {
        const status = await writer.change(`rotation ${action}`, (ca) => (action === 'start' ? ca.startRotation() : action === 'advance' ? ca.advanceRotation() : ca.abortRotation()));
        res.json(status);
      } catch (error) {
        if (error instanceof NotLeaderError) {
          if (error.leader !== undefined) res.set('Meshfed-Leader', error.leader);
          throw new ApiError(503, 'unavailable', error.message);
        }
        if (error instanceof TrustError) throw new ApiError(409, 'conflict', error.message);
        throw error;
      }
    })
    .all((req, res) => {
      res.set('Allow', 'POST');
      sendError(res, new ApiError(405, 'method_not_allowed', `${req.method} is not allowed on /api/v1/trust/rotation: use POST`));
    });
  router
    .route('/trust')
    .get((_req, res) => {
      res.json(trustInfo(authority));
    })
    .all((req, res) => {
      res.set('Allow', 'GET');
      sendError(res, new ApiError(405, 'method_not_allowed', `${req.method} is not allowed on /api/v1/trust: use GET (rotation steps are POST /api/v1/trust/rotation)`));
    });
  return router;
}
