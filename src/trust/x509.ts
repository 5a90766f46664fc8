import { randomBytes, sign, X509Certificate, type KeyObject } from 'node:crypto';
import {
  bitString,
  boolean,
  explicit,
  implicitConstructed,
  implicitPrimitive,
  objectIdentifier,
  octetString,
  readChildren,
  readElement,
  sequence,
  set,
  smallInteger,
  time,
  unsignedInteger,
  utf8String,
} from './der.js';
import { keyIdentifier, keyKind, signatureAlgorithmFor, spkiDer, type SignatureAlgorithm } from './keys.js';

const OID = {
  commonName: '2.5.4.3',
  organization: '2.5.4.10',
  organizationalUnit: '2.5.4.11',
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  nameConstraints: '2.5.29.30',
  authorityKeyIdentifier: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
} as const;

export interface DistinguishedName {
  organization?: string;
  organizationalUnit?: string;
  commonName?: string;
}

export function encodeName(name: DistinguishedName): Buffer {
  const rdns: Buffer[] = [];
  const add = (oid: string, value: string | undefined): void => {
    if (value !== undefined) rdns.push(set(sequence(objectIdentifier(oid), utf8String(value))));
  };
  add(OID.organization, name.organization);
  add(OID.organizationalUnit, name.organizationalUnit);
  add(OID.commonName, name.commonName);
  return sequence(...rdns);
}

const extension = (oid: string, critical: boolean, value: Buffer): Buffer =>
  critical ? sequence(objectIdentifier(oid), boolean(true), octetString(value)) : sequence(objectIdentifier(oid), octetString(value));

// KeyUsage named bits, DER-encoded with trailing zero bits removed (X.690 §11.2.2).
const KEY_USAGE_CA = Buffer.from([0x03, 0x02, 0x01, 0x06]); // keyCertSign | cRLSign
const KEY_USAGE_LEAF_EC = Buffer.from([0x03, 0x02, 0x07, 0x80]); // digitalSignature
const KEY_USAGE_LEAF_RSA = Buffer.from([0x03, 0x02, 0x05, 0xa0]); // digitalSignature | keyEncipherment

const subjectKeyIdExt = (keyId: Buffer): Buffer => extension(OID.subjectKeyIdentifier, false, octetString(keyId));
const authorityKeyIdExt = (keyId: Buffer): Buffer => extension(OID.authorityKeyIdentifier, false, sequence(implicitPrimitive(0, keyId)));
const uriSanExt = (uri: string, critical: boolean): Buffer => extension(OID.subjectAltName, critical, sequence(implicitPrimitive(6, Buffer.from(uri, 'ascii'))));

/** Pins everything below a CA to the trust domain: RFC 5280 URI constraints match the URI's host. */
const trustDomainConstraint = (trustDomain: string): Buffer =>
  sequence(implicitConstructed(0, sequence(implicitPrimitive(6, Buffer.from(trustDomain, 'ascii')))));

/** A positive, non-zero 128-bit serial whose first octet never needs a sign pad. */
export function newSerial(): Buffer {
  const serial = randomBytes(16);
  serial[0] = ((serial[0] ?? 0) & 0x7f) | 0x40;
  return serial;
}

function assemble(tbs: Buffer, algorithm: SignatureAlgorithm, signer: KeyObject): Buffer {
  const signature = sign(algorithm.hash, tbs, signer);
  return sequence(tbs, algorithm.der, bitString(signature));
}

export interface IssuerInfo {
  /** the issuer's subject Name, exactly as encoded in its certificate */
  subjectDer: Buffer;
  /** the issuer's subject key identifier */
  keyId: Buffer;
  key: KeyObject;
}

export interface CaCertificateRequest {
  subject: DistinguishedName;
  /** the public (or private) key the certificate is for */
  subjectKey: KeyObject;
  /** the signer; absent for a self-signed root, which then signs with `selfKey` */
  issuer?: IssuerInfo;
  selfKey?: KeyObject;
  notBefore: Date;
  notAfter: Date;
  pathLength: number;
  trustDomain: string;
}

/** A root (self-signed) or intermediate CA certificate, DER-encoded. */
export function issueCaCertificate(req: CaCertificateRequest): Buffer {
  const spki = spkiDer(req.subjectKey);
  const keyId = keyIdentifier(spki);
  const subjectDer = encodeName(req.subject);
  const signer = req.issuer?.key ?? req.selfKey;
  if (!signer) throw new Error('a CA certificate needs an issuer or, for a root, its own private key');
  const algorithm = signatureAlgorithmFor(signer);
  const extensions = [
    extension(OID.basicConstraints, true, sequence(boolean(true), smallInteger(req.pathLength))),
    extension(OID.keyUsage, true, KEY_USAGE_CA),
    subjectKeyIdExt(keyId),
    authorityKeyIdExt(req.issuer?.keyId ?? keyId),
    extension(OID.nameConstraints, true, trustDomainConstraint(req.trustDomain)),
  ];
  const tbs = sequence(
    explicit(0, smallInteger(2)),
    unsignedInteger(newSerial()),
    algorithm.der,
    req.issuer?.subjectDer ?? subjectDer,
    sequence(time(req.notBefore), time(req.notAfter)),
    subjectDer,
    spki,
    explicit(3, sequence(...extensions)),
  );
  return assemble(tbs, algorithm, signer);
}

export interface LeafRequest {
  /** the workload's SubjectPublicKeyInfo, DER */
  spki: Buffer;
  spiffeId: string;
  notBefore: Date;
  notAfter: Date;
}

/**
 * Issues X.509-SVIDs under one CA. Everything that does not change from leaf to leaf
 * (issuer name, algorithm, fixed extensions) is encoded once, so issuing costs little
 * more than the signature itself.
 */
export class LeafIssuer {
  readonly #algorithm: SignatureAlgorithm;
  readonly #version = explicit(0, smallInteger(2));
  readonly #issuerName: Buffer;
  readonly #emptySubject = sequence();
  readonly #fixedExtensions: Buffer;
  readonly #key: KeyObject;

  constructor(issuer: IssuerInfo) {
    this.#key = issuer.key;
    this.#algorithm = signatureAlgorithmFor(issuer.key);
    this.#issuerName = issuer.subjectDer;
    this.#fixedExtensions = Buffer.concat([
      extension(OID.basicConstraints, true, sequence()),
      extension(OID.extKeyUsage, false, sequence(objectIdentifier(OID.serverAuth), objectIdentifier(OID.clientAuth))),
      authorityKeyIdExt(issuer.keyId),
    ]);
  }

  /**
   * The SVID profile: empty subject with a critical SAN holding exactly one URI (the
   * SPIFFE ID), cA=false, critical key usage with digitalSignature (and keyEncipherment
   * for RSA keys), EKU serverAuth+clientAuth.
   */
  issue(req: LeafRequest, rsaKey: boolean): Buffer {
    const extensions = Buffer.concat([
      this.#fixedExtensions,
      extension(OID.keyUsage, true, rsaKey ? KEY_USAGE_LEAF_RSA : KEY_USAGE_LEAF_EC),
      subjectKeyIdExt(keyIdentifier(req.spki)),
      uriSanExt(req.spiffeId, true),
    ]);
    const tbs = sequence(
      this.#version,
      unsignedInteger(newSerial()),
      this.#algorithm.der,
      this.#issuerName,
      sequence(time(req.notBefore), time(req.notAfter)),
      this.#emptySubject,
      req.spki,
      explicit(3, sequence(extensions)),
    );
    return assemble(tbs, this.#algorithm, this.#key);
  }
}

export function derToPem(der: Buffer, label = 'CERTIFICATE'): string {
  const b64 = der.toString('base64').replace(/.{64}/g, '$&\n');
  return `-----BEGIN ${label}-----\n${b64}${b64.endsWith('\n') ? '' : '\n'}-----END ${label}-----\n`;
}

/** Splits a PEM bundle into certificates, refusing anything that is not a certificate. */
export function parseCertificates(pem: string, what: string): X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new Error(`${what}: no PEM certificate found`);
  return blocks.map((block, i) => {
    try {
      return new X509Certificate(block);
    } catch (error) {
      throw new Error(`${what}: certificate ${i + 1} is not valid X.509 (${(error as Error).message})`, { cause: error });
    }
  });
}

export const certificatesPem = (certs: readonly X509Certificate[]): string => certs.map((c) => c.toString()).join('');

/** The TBSCertificate's fields, for the parts Node's X509Certificate does not expose. */
function tbsFields(cert: X509Certificate): { subjectDer: Buffer; extensions: Map<string, Buffer> } {
  const [tbs] = readChildren(readElement(cert.raw).content);
  if (!tbs) throw new Error('malformed certificate');
  const fields = readChildren(tbs.content);
  const offset = fields[0]?.tag === 0xa0 ? 1 : 0;
  const subject = fields[offset + 4];
  if (!subject) throw new Error('malformed certificate: no subject');
  const extensions = new Map<string, Buffer>();
  const extField = fields.find((f) => f.tag === 0xa3);
  const [extList] = extField ? readChildren(extField.content) : [];
  for (const ext of extList ? readChildren(extList.content) : []) {
    const parts = readChildren(ext.content);
    const id = parts[0];
    const value = parts[parts.length - 1];
    if (id && value) extensions.set(decodeOid(id.content), value.content);
  }
  return { subjectDer: subject.raw, extensions };
}

export function decodeOid(content: Buffer): string {
  const arcs: number[] = [];
  let value = 0;
  for (const byte of content) {
    value = value * 128 + (byte & 0x7f);
    if (!(byte & 0x80)) {
      if (arcs.length === 0) arcs.push(value < 80 ? Math.floor(value / 40) : 2, value < 80 ? value % 40 : value - 80);
      else arcs.push(value);
      value = 0;
    }
  }
  return arcs.join('.');
}

/** Issuer information for signing under `cert` with `key`; checks that they belong together. */
export function issuerInfo(cert: X509Certificate, key: KeyObject): IssuerInfo {
  if (!cert.checkPrivateKey(key)) throw new Error(`the private key does not belong to certificate ${cert.subject || cert.serialNumber}`);
  if (!cert.ca) throw new Error(`certificate ${cert.subject || cert.serialNumber} is not a CA (basicConstraints cA is not true)`);
  keyKind(key);
  const { subjectDer, extensions } = tbsFields(cert);
  const ski = extensions.get(OID.subjectKeyIdentifier);
  const keyId = ski ? readElement(ski).content : keyIdentifier(spkiDer(cert.publicKey));
  return { subjectDer, keyId, key };
}

/** Whether a CA certificate carries the name constraint that pins it to `trustDomain`. */
export function constrainedTo(cert: X509Certificate, trustDomain: string): boolean {
  const value = tbsFields(cert).extensions.get(OID.nameConstraints);
  return value?.equals(trustDomainConstraint(trustDomain)) ?? false;
}

/** The certificate's subject key identifier, hex, as used to name roots in bundles and status. */
export function subjectKeyIdHex(cert: X509Certificate): string {
  const ski = tbsFields(cert).extensions.get(OID.subjectKeyIdentifier);
  return (ski ? readElement(ski).content : keyIdentifier(spkiDer(cert.publicKey))).toString('hex');
}

export function uriSans(cert: X509Certificate): string[] {
  return (cert.subjectAltName ?? '')
    .split(', ')
    .filter((entry) => entry.startsWith('URI:'))
    .map((entry) => entry.slice(4));
}
