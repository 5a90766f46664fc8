/** Helpers of the embedded-federation tests: free loopback ports, mTLS clients, bounded waits. */
import { createServer } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import type { PeerCertificate } from 'node:tls';
import { peerUri } from '../../src/sim/trust-demo.js';
import type { TlsMaterial } from '../../src/sim/identities.js';

/** every wait is bounded, generously */
export const WAIT_MS = 60_000;

/** A port free on `host` now (the test's federation file names it before anything listens). */
export async function freePort(host: string): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve, reject) => {
    probe.once('error', reject);
    probe.listen(0, host, resolve);
  });
  const address = probe.address();
  await new Promise<void>((resolve) => probe.close(() => { resolve(); }));
  return typeof address === 'object' && address !== null ? address.port : 0;
}

/** Channel options for a gRPC client that targets an IP literal: a name to send as SNI instead (RFC 6066 forbids IPs there). */
export const SNI_OPTION = { 'grpc.ssl_target_name_override': 'workload.sim.test' } as const;

/** gRPC channel credentials presenting `tls`; the server's SPIFFE ID is recorded in `seen`. */
export function mtlsCredentials(tls: TlsMaterial, seen: string[] = []): grpc.ChannelCredentials {
  return grpc.credentials.createSsl(Buffer.from(tls.ca), Buffer.from(tls.key), Buffer.from(tls.cert), {
    checkServerIdentity: (_host: string, cert: PeerCertificate) => {
      seen.push(peerUri(cert));
      return undefined;
    },
  });
}

/** Polls `condition` until it holds; fails naming `what` after WAIT_MS. */
export async function eventually(condition: () => boolean | Promise<boolean>, what: string, limitMs = WAIT_MS): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((done) => setTimeout(done, 100));
  }
}
