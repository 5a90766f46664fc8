/**
 * The trust domain's metrics: certificates the CA service issued (by cluster) and refused (by gRPC status), and when
 * every root and intermediate expires, read from the authority at each scrape so renewals and rotations show at once.
 */
import { Counter, Gauge, type Registry as PromRegistry } from 'prom-client';
import type { TrustAuthority } from './authority.js';
import { subjectKeyIdHex } from './x509.js';

/** What the CA service reports about each certificate request. */
export interface CaServiceMetrics {
  issued(cluster: string): void;
  /** `code`: the gRPC status name it answered (UNAUTHENTICATED, INVALID_ARGUMENT, ...) */
  refused(code: string): void;
}

export function registerTrustMetrics(authority: TrustAuthority, registry: PromRegistry): CaServiceMetrics {
  const registers = [registry];
  const issued = new Counter({ name: 'meshfed_ca_certificates_issued_total', help: 'Workload certificates the CA service issued, by the cluster whose intermediate signed them', labelNames: ['cluster'], registers });
  const refused = new Counter({ name: 'meshfed_ca_certificate_requests_refused_total', help: 'Certificate requests the CA service refused or failed, by gRPC status', labelNames: ['code'], registers });
  new Gauge({
    name: 'meshfed_ca_certificate_expiry_timestamp_seconds',
    help: 'When each root and each cluster intermediate expires (Unix seconds)',
    labelNames: ['kind', 'cluster', 'root'],
    registers,
    collect() {
      this.reset();
      for (const root of authority.roots()) {
        this.set({ kind: 'root', cluster: '', root: subjectKeyIdHex(root) }, Math.floor(new Date(root.validTo).getTime() / 1000));
      }
      for (const intermediate of authority.intermediates()) {
        if (intermediate.notAfter === undefined) continue;
        this.set({ kind: 'intermediate', cluster: intermediate.cluster, root: intermediate.rootId ?? '' }, Math.floor(Date.parse(intermediate.notAfter) / 1000));
      }
    },
  });
  return {
    issued: (cluster) => { issued.inc({ cluster }); },
    refused: (code) => { refused.inc({ code }); },
  };
}
