import { X509Certificate } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { formatDuration, parseDuration } from '../model/duration.js';
import type { TrustAuthority } from './authority.js';
import { TrustError } from './authority.js';
import { CsrError, createCsr } from './csr.js';
import { generateKey, privateKeyPem } from './keys.js';
import type { CaServiceMetrics } from './metrics.js';
import { parseSpiffeId, workloadSpiffeId } from './spiffe.js';
import { TokenError, verifyToken } from './tokens.js';
import { uriSans } from './x509.js';
import { SILENT_LOGGER, type Logger } from '../logging.js';

/**
 * The Istio-compatible CA: `istio.v1.auth.IstioCertificateService/CreateCertificate`
 * over TLS. Callers authenticate with a client certificate issued under this
 * federation's roots or with a meshfed bearer token (see tokens.ts); the issued
 * certificate's SPIFFE ID is always the caller's, never what the CSR asks for.
 */


export const CA_SERVICE_NAME = 'istio.v1.auth.IstioCertificateService';
/** Works from src/trust/*.ts and from dist/trust/*.js alike. */
export const CA_PROTO_PATH = fileURLToPath(new URL('../../proto/istio/ca.proto', import.meta.url));
/**
 * How the service loads the proto; clients that want the same JS shapes
 * (snake_case fields, int64 as decimal strings, Struct values camelCase) use the same options.
 */
export const CA_PROTO_OPTIONS: protoLoader.Options = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true };
/** The namespace and service account of the CA's own SVID. */
export const CA_SERVER_NAMESPACE = 'meshfed-system';
export const CA_SERVER_SERVICE_ACCOUNT = 'meshfed-ca';
/** Istio's metadata key naming the cluster the caller believes it is in. */
export const CLUSTER_ID_KEY = 'ClusterID';

/** google.protobuf.Struct as proto-loader decodes it with CA_PROTO_OPTIONS. */
export interface ProtoStruct {
  fields?: Record<string, ProtoValue>;
}
export interface ProtoValue {
  kind?: 'nullValue' | 'numberValue' | 'stringValue' | 'boolValue' | 'structValue' | 'listValue';
  nullValue?: string;
  numberValue?: number;
  stringValue?: string;
  boolValue?: boolean;
  structValue?: ProtoStruct;
  listValue?: { values?: ProtoValue[] };
}

export interface IstioCertificateRequest {
  /** PEM CSR */
  csr: string;
  /** seconds, int64 as a decimal string (0: the policy default) */
  validity_duration: string;
  metadata: ProtoStruct | null;
}

export interface IstioCertificateResponse {
  /** leaf first, root last */
  cert_chain: string[];
}

export interface CaServiceOptions {
  authority: TrustAuthority;
  host: string;
  /** 0 picks a free port; the handle reports the one bound */
  port: number;
  /** the cluster whose intermediate signs the service's own certificate */
  serverCluster: string;
  logger?: Logger;
  /** how often the service checks whether its certificate is due or the bundle changed; default 30 s */
  refreshIntervalMs?: number;
  /** counts issued and refused requests (registerTrustMetrics) */
  metrics?: CaServiceMetrics;
}

export interface CaServiceHandle {
  readonly port: number;
  /** the SPIFFE ID in the service's certificate, which clients should verify */
  readonly serverSpiffeId: string;
  /**
   * Renews the service's certificate and trusted roots now if the bundle changed, the
   * server cluster's intermediate changed, or half the certificate's life has passed.
   * New connections get the new material; returns whether anything changed.
   */
  refresh(now?: Date): boolean;
  close(): Promise<void>;
}

const DEFAULT_REFRESH_MS = 30_000;
/** gRPC's own cap on a request message: at least 64 KiB, always room for the largest CSR policy allows. */
const MIN_MESSAGE_CAP = 64 * 1024;
const SHUTDOWN_GRACE_MS = 5_000;

export interface CaProto {
  service: grpc.ServiceDefinition;
  createCertificate: grpc.MethodDefinition<IstioCertificateRequest, IstioCertificateResponse>;
}

/** Loads the CA service definition from proto/istio/ca.proto. */
export function loadCaProto(): CaProto {
  const definition = protoLoader.loadSync(CA_PROTO_PATH, CA_PROTO_OPTIONS);
  const service = definition[CA_SERVICE_NAME];
  if (!service || !('CreateCertificate' in service)) throw new Error(`${CA_PROTO_PATH} does not define ${CA_SERVICE_NAME}`);
  const method = service.CreateCertificate;
  if (typeof method !== 'object' || !('requestSerialize' in method)) throw new Error(`${CA_PROTO_PATH}: ${CA_SERVICE_NAME} lacks CreateCertificate`);
  // proto-loader types messages as `object`; with CA_PROTO_OPTIONS they have the shapes declared above.
  return { service, createCertificate: method as unknown as CaProto['createCertificate'] };
}

class RpcError extends Error {
  constructor(
    readonly code: grpc.status,
    message: string,
  ) {
    super(message);
  }
}

interface Caller {
  spiffeId: string;
  cluster: string;
  via: 'mtls' | 'token';
}

/**
 * Feeds the service's identity and trusted roots to grpc-js, which swaps the TLS
 * secure context of its listener when they change (no restart, no dropped connections).
 */
class TlsMaterial implements grpc.experimental.CertificateProvider {
  #ca: grpc.experimental.CaCertificateUpdate;
  #identity: grpc.experimental.IdentityCertificateUpdate;
  readonly #caListeners = new Set<grpc.experimental.CaCertificateUpdateListener>();
  readonly #identityListeners = new Set<grpc.experimental.IdentityCertificateUpdateListener>();

  constructor(ca: Buffer, certificate: Buffer, privateKey: Buffer) {
    this.#ca = { caCertificate: ca };
    this.#identity = { certificate, privateKey };
  }

  update(ca: Buffer, certificate: Buffer, privateKey: Buffer): void {
    this.#ca = { caCertificate: ca };
    this.#identity = { certificate, privateKey };
    for (const listener of this.#caListeners) listener(this.#ca);
    for (const listener of this.#identityListeners) listener(this.#identity);
  }

  // grpc-js registers its own watcher only after adding these listeners, so the first
  // delivery must come later than the registration.
  addCaCertificateListener(listener: grpc.experimental.CaCertificateUpdateListener): void {
    this.#caListeners.add(listener);
    process.nextTick(() => {
      if (this.#caListeners.has(listener)) listener(this.#ca);
    });
  }
  removeCaCertificateListener(listener: grpc.experimental.CaCertificateUpdateListener): void {
    this.#caListeners.delete(listener);
  }
  addIdentityCertificateListener(listener: grpc.experimental.IdentityCertificateUpdateListener): void {
    this.#identityListeners.add(listener);
    process.nextTick(() => {
      if (this.#identityListeners.has(listener)) listener(this.#identity);
    });
  }
  removeIdentityCertificateListener(listener: grpc.experimental.IdentityCertificateUpdateListener): void {
    this.#identityListeners.delete(listener);
  }
}

interface ServerCert {
  certChain: Buffer;
  key: Buffer;
  serial: string;
  issuedAt: number;
  notAfter: number;
  bundleSequence: number;
  intermediateSerial: string | undefined;
}

/**
 * Starts the CA service. TLS only: the server presents an SVID for
 * spiffe://TD/ns/meshfed-system/sa/meshfed-ca; it asks every client for a certificate,
 * accepts connections without one, and trusts a presented one only if it chains to a
 * root of the bundle.
 */
export async function startCaService(options: CaServiceOptions): Promise<CaServiceHandle> {
  const { authority, serverCluster } = options;
  const logger = options.logger ?? SILENT_LOGGER;
  const serverSpiffeId = workloadSpiffeId(authority.trustDomain, CA_SERVER_NAMESPACE, CA_SERVER_SERVICE_ACCOUNT);
  const proto = loadCaProto();

  const issueServerCert = (now: Date): ServerCert => {
    const key = generateKey('ec-p256');
    const svid = authority.signWorkload({ cluster: serverCluster, csr: createCsr(key), spiffeId: serverSpiffeId, now });
    const [leafPem = ''] = svid.certChain;
    return {
      // the server sends leaf and intermediate; clients hold the root
      certChain: Buffer.from(svid.certChain.slice(0, -1).join('')),
      key: Buffer.from(privateKeyPem(key)),
      serial: new X509Certificate(leafPem).serialNumber,
      issuedAt: now.getTime(),
      notAfter: svid.notAfter.getTime(),
      bundleSequence: authority.bundleSequence,
      intermediateSerial: authority.intermediateCertificate(serverCluster)?.serialNumber,
    };
  };

  let current = issueServerCert(new Date());
  const material = new TlsMaterial(Buffer.from(authority.bundlePem()), current.certChain, current.key);

  const refresh = (now: Date = new Date()): boolean => {
    const due =
      current.bundleSequence !== authority.bundleSequence ||
      current.intermediateSerial !== authority.intermediateCertificate(serverCluster)?.serialNumber ||
      now.getTime() >= current.issuedAt + (current.notAfter - current.issuedAt) / 2;
    if (!due) return false;
    current = issueServerCert(now);
    material.update(Buffer.from(authority.bundlePem()), current.certChain, current.key);
    logger.info({ identity: serverSpiffeId, cluster: serverCluster, serial: current.serial, bundleSequence: current.bundleSequence }, 'CA service certificate renewed');
    return true;
  };

  const createCertificate: grpc.handleUnaryCall<IstioCertificateRequest, IstioCertificateResponse> = (call, callback) => {
    const peer = call.getPeer();
    try {
      const caller = authenticate(authority, call);
      checkClusterId(call.request.metadata, caller.cluster);
      const ttl = requestedTtl(call.request.validity_duration, authority.policy.lifetimes.workload.max);
      const svid = authority.signWorkload({ cluster: caller.cluster, csr: call.request.csr, spiffeId: caller.spiffeId, ...(ttl !== undefined ? { ttl } : {}) });
      const serial = new X509Certificate(svid.certChain[0] ?? '').serialNumber;
      if (svid.ignoredSans.length > 0) {
        logger.info({ identity: caller.spiffeId, cluster: caller.cluster, ignoredSans: svid.ignoredSans }, 'SANs requested in the CSR were ignored: the SAN comes from the caller identity');
      }
      logger.info(
        { identity: caller.spiffeId, cluster: caller.cluster, authenticatedBy: caller.via, serial, notAfter: svid.notAfter.toISOString(), peer },
        'workload certificate issued',
      );
      options.metrics?.issued(caller.cluster);
      callback(null, { cert_chain: svid.certChain });
    } catch (error) {
      const rpc = toRpcError(error);
      options.metrics?.refused(grpc.status[rpc.code]);
      if (rpc.code === grpc.status.INTERNAL) logger.error({ peer, err: { message: (error as Error).message } }, 'certificate request failed');
      else logger.warn({ peer, code: grpc.status[rpc.code], reason: rpc.message }, 'certificate request refused');
      callback({ code: rpc.code, details: rpc.message });
    }
  };

  const server = new grpc.Server({
    'grpc.max_receive_message_length': Math.max(MIN_MESSAGE_CAP, authority.policy.limits.maxCsrBytes + 16 * 1024),
  });
  server.addService(proto.service, { CreateCertificate: createCertificate });
  // Not ServerCredentials.createSsl: with checkClientCertificate=false it never asks for a
  // client certificate, and with true it refuses clients without one. This asks, allows
  // none, and exposes a presented one (getAuthContext) only when it verified against the roots.
  // (The exported function's parameter names are swapped in grpc-js 1.14; one provider serves both.)
  const credentials = grpc.experimental.createCertificateProviderServerCredentials(material, material, false);
  const address = `${options.host.includes(':') ? `[${options.host}]` : options.host}:${options.port}`;
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(address, credentials, (error, bound) => {
      if (error) reject(error);
      else resolve(bound);
    });
  });

  const timer = setInterval(() => {
    try {
      refresh();
    } catch (error) {
      logger.error({ identity: serverSpiffeId, cluster: serverCluster, err: { message: (error as Error).message } }, 'CA service certificate renewal failed; keeping the current one');
    }
  }, options.refreshIntervalMs ?? DEFAULT_REFRESH_MS);
  timer.unref();
  logger.info({ address, port, identity: serverSpiffeId, cluster: serverCluster, serial: current.serial }, 'CA service listening');

  let closing: Promise<void> | undefined;
  return {
    port,
    serverSpiffeId,
    refresh,
    close: () => {
      closing ??= new Promise<void>((resolve) => {
        clearInterval(timer);
        const force = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, SHUTDOWN_GRACE_MS);
        force.unref();
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
      return closing;
    },
  };
}

/** Who is calling: a client certificate that verified against the roots, else a bearer token. */
function authenticate(authority: TrustAuthority, call: grpc.ServerUnaryCall<IstioCertificateRequest, IstioCertificateResponse>): Caller {
  // grpc-js exposes the peer certificate only when the TLS handshake verified it against the roots.
  const peerCert = call.getAuthContext().sslPeerCertificate;
  if (peerCert) return fromClientCertificate(authority, new X509Certificate(peerCert.raw));
  const values = call.metadata.get('authorization');
  if (values.length === 0) {
    throw new RpcError(grpc.status.UNAUTHENTICATED, 'no credentials: present a client certificate issued under this trust domain or an "authorization: Bearer <token>" header');
  }
  const [header] = values;
  if (values.length > 1 || typeof header !== 'string') throw new RpcError(grpc.status.UNAUTHENTICATED, 'expected exactly one authorization header');
  const match = /^Bearer +(\S+) *$/i.exec(header);
  if (!match?.[1]) throw new RpcError(grpc.status.UNAUTHENTICATED, 'the authorization header must be "Bearer <token>"');
  let claims;
  try {
    claims = verifyToken(authority.tokenSecret(), match[1]);
  } catch (error) {
    if (error instanceof TokenError) throw new RpcError(grpc.status.UNAUTHENTICATED, `bearer token rejected: ${error.message}`);
    throw error;
  }
  return { spiffeId: workloadSpiffeId(authority.trustDomain, claims.namespace, claims.serviceAccount), cluster: claims.cluster, via: 'token' };
}

function fromClientCertificate(authority: TrustAuthority, cert: X509Certificate): Caller {
  if (cert.ca) throw new RpcError(grpc.status.UNAUTHENTICATED, 'the client certificate is a CA certificate, not a workload identity');
  const uris = uriSans(cert);
  const [spiffeId] = uris;
  if (uris.length !== 1 || !spiffeId) throw new RpcError(grpc.status.UNAUTHENTICATED, `the client certificate must carry exactly one URI SAN (found ${uris.length})`);
  let trustDomain: string;
  try {
    trustDomain = parseSpiffeId(spiffeId).trustDomain;
  } catch (error) {
    throw new RpcError(grpc.status.UNAUTHENTICATED, `the client certificate's URI SAN is not a SPIFFE ID: ${(error as Error).message}`);
  }
  if (trustDomain !== authority.trustDomain) throw new RpcError(grpc.status.UNAUTHENTICATED, `the client certificate's SPIFFE ID is outside trust domain ${authority.trustDomain}`);
  const cluster = issuingCluster(authority, cert);
  if (!cluster) throw new RpcError(grpc.status.UNAUTHENTICATED, 'the client certificate was not issued by any cluster intermediate of this federation');
  return { spiffeId, cluster, via: 'mtls' };
}

/**
 * The cluster whose intermediate issued `cert`: its current intermediate, checked by
 * signature; or, for a certificate from an earlier intermediate of the cluster (the TLS
 * layer already verified the chain up to a root of the bundle, and every intermediate
 * under those roots names its cluster in its subject OU), that cluster.
 */
function issuingCluster(authority: TrustAuthority, cert: X509Certificate): string | undefined {
  for (const cluster of authority.clusters) {
    const intermediate = authority.intermediateCertificate(cluster);
    if (intermediate && cert.checkIssued(intermediate) && cert.verify(intermediate.publicKey)) return cluster;
  }
  const issuer = cert.issuer.split('\n');
  const units = issuer.filter((line) => line.startsWith('OU=')).map((line) => line.slice(3));
  const [unit] = units;
  if (!issuer.includes(`O=${authority.trustDomain}`) || units.length !== 1 || !unit) return undefined;
  return authority.clusters.includes(unit) ? unit : undefined;
}

function checkClusterId(metadata: ProtoStruct | null, cluster: string): void {
  const fields = metadata?.fields;
  if (!fields || !Object.hasOwn(fields, CLUSTER_ID_KEY)) return;
  const value = fields[CLUSTER_ID_KEY];
  if (value?.kind !== 'stringValue' || typeof value.stringValue !== 'string') {
    throw new RpcError(grpc.status.INVALID_ARGUMENT, `metadata ${CLUSTER_ID_KEY} must be a string`);
  }
  if (value.stringValue === '') return;
  if (value.stringValue !== cluster) {
    throw new RpcError(grpc.status.PERMISSION_DENIED, `metadata ${CLUSTER_ID_KEY} does not match the caller's cluster ${cluster}`);
  }
}

/** validity_duration in seconds → milliseconds; undefined for the policy default. */
function requestedTtl(value: string, max: string): number | undefined {
  let seconds: bigint;
  try {
    seconds = BigInt(value || '0');
  } catch {
    throw new RpcError(grpc.status.INVALID_ARGUMENT, 'validity_duration must be a whole number of seconds');
  }
  if (seconds < 0n) throw new RpcError(grpc.status.INVALID_ARGUMENT, 'validity_duration must not be negative');
  if (seconds === 0n) return undefined;
  const maxMs = parseDuration(max);
  if (seconds * 1000n > BigInt(maxMs)) {
    throw new RpcError(grpc.status.INVALID_ARGUMENT, `validity_duration ${seconds.toString()}s exceeds the policy maximum of ${max} (${formatDuration(maxMs)})`);
  }
  return Number(seconds) * 1000;
}

function toRpcError(error: unknown): RpcError {
  if (error instanceof RpcError) return error;
  if (error instanceof CsrError) return new RpcError(grpc.status.INVALID_ARGUMENT, `invalid CSR: ${error.message}`);
  if (error instanceof TrustError) return new RpcError(grpc.status.FAILED_PRECONDITION, error.message);
  return new RpcError(grpc.status.INTERNAL, 'internal error');
}
