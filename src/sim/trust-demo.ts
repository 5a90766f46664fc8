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

function workload(authority: TrustAuthority, cluster: string, serviceAccount: string) {
  const key = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  const spiffeId = workloadSpiffeId(authority.trustDomain, 'default', serviceAccount);
  const { certChain } = authority.signWorkload({ cluster, csr: createCsr(key), spiffeId, ttl: '1h' });
  return { spiffeId, tls: { key: privateKeyPem(key), cert: certChain.slice(0, 2).join(''), ca: authority.bundlePem() } };
}

const peerUri = (cert: PeerCertificate): string => /URI:([^,]+)/.exec(cert.subjectaltname ?? '')?.[1] ?? '(none)';

/**
 * Issues certificates for a workload in each of two clusters and runs one real mTLS
 * handshake between them on loopback: proof that the clusters share a trust domain.
 */
export async function crossClusterHandshake(authority: TrustAuthority, serverCluster: string, clientCluster: string): Promise<HandshakeReport> {
  const server = workload(authority, serverCluster, 'reviews');
  const client = workload(authority, clientCluster, 'productpage');
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
