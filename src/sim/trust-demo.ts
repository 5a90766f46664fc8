import { generateKeyPairSync } from 'node:crypto';
import { once } from 'node:events';
import { connect, createServer, type PeerCertificate, type TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';
import type { TrustAuthority } from '../trust/authority.js';
import { createCsr } from '../trust/csr.js';
import { privateKeyPem } from '../trust/keys.js';
import { workloadSpiffeId } from '../trust/spiffe.js';

export interface HandshakeReport {
  server: { cluster: string; spiffeId: string; sawPeer: string };
  client: { cluster: string; spiffeId: string; sawPeer: string };
}

/** A workload's identity: its SPIFFE ID and what Node's tls needs (key, leaf + intermediate, the trust bundle). */
export interface WorkloadIdentity {
  spiffeId: string;
  tls: { key: string; cert: string; ca: string };
}

/** A fresh key and an X.509-SVID for `namespace/serviceAccount` signed by `cluster`'s intermediate. */
export function workloadIdentity(authority: TrustAuthority, cluster: string, serviceAccount: string, namespace = 'default'): WorkloadIdentity {
  const key = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  const spiffeId = workloadSpiffeId(authority.trustDomain, namespace, serviceAccount);
  const { certChain } = authority.signWorkload({ cluster, csr: createCsr(key), spiffeId, ttl: '1h' });
  return { spiffeId, tls: { key: privateKeyPem(key), cert: certChain.slice(0, 2).join(''), ca: authority.bundlePem() } };
}

/** The URI SAN (SPIFFE ID) of a peer certificate. */
export const peerUri = (cert: PeerCertificate): string => /URI:([^,]+)/.exec(cert.subjectaltname ?? '')?.[1] ?? '(none)';

/**
 * Issues certificates for a workload in each of two clusters and runs one real mTLS
 * handshake between them on loopback: proof that the clusters share a trust domain.
 */
export async function crossClusterHandshake(authority: TrustAuthority, serverCluster: string, clientCluster: string): Promise<HandshakeReport> {
  const server = workloadIdentity(authority, serverCluster, 'reviews');
  const client = workloadIdentity(authority, clientCluster, 'productpage');
  let serverSaw = '(none)';
  const tlsServer = createServer({ ...server.tls, requestCert: true, rejectUnauthorized: true }, (socket: TLSSocket) => {
    serverSaw = peerUri(socket.getPeerCertificate());
    socket.end('ok');
  });
  tlsServer.listen(0, '127.0.0.1');
  await once(tlsServer, 'listening');
  try {
    const { port } = tlsServer.address() as AddressInfo;
    const socket = connect({ ...client.tls, host: '127.0.0.1', port, servername: 'reviews.default', checkServerIdentity: () => undefined });
    await once(socket, 'secureConnect');
    const clientSaw = peerUri(socket.getPeerCertificate());
    socket.resume();
    await once(socket, 'end');
    socket.destroy();
    return {
      server: { cluster: serverCluster, spiffeId: server.spiffeId, sawPeer: serverSaw },
      client: { cluster: clientCluster, spiffeId: client.spiffeId, sawPeer: clientSaw },
    };
  } finally {
    tlsServer.close();
  }
}
