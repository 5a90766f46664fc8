import { createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import {
  bitString,
  implicitConstructed,
  implicitPrimitive,
  objectIdentifier,
  octetString,
  readChildren,
  readElement,
  sequence,
  set,
  smallInteger,
} from './der.js';
import { CSR_SIGNATURE_HASHES, keyKind, signatureAlgorithmFor, spkiDer, type KeyKind } from './keys.js';
import { decodeOid, derToPem, encodeName, type DistinguishedName } from './x509.js';

const EXTENSION_REQUEST = '1.2.840.113549.1.9.14';
const SUBJECT_ALT_NAME = '2.5.29.17';
const COMMON_NAME = '2.5.4.3';

export interface ParsedCsr {
  /** the requester's SubjectPublicKeyInfo, DER */
  spki: Buffer;
  publicKey: KeyObject;
  keyKind: KeyKind;
  /** the subject's common name, if any */
  commonName?: string;
  /** SANs the CSR asks for; reported, never obeyed */
  requestedSans: string[];
}

export class CsrError extends Error {}

/** Accepts PEM ("CERTIFICATE REQUEST") or DER; verifies the CSR's own signature. */
export function parseCsr(input: Buffer | string, maxBytes: number): ParsedCsr {
  const size = typeof input === 'string' ? Buffer.byteLength(input) : input.length;
  if (size > maxBytes) throw new CsrError(`CSR is ${size} bytes; the limit is ${maxBytes}`);
  if (size === 0) throw new CsrError('CSR is empty');
  const der = toDer(input);
  try {
    const outer = readElement(der);
    if (outer.tag !== 0x30 || outer.raw.length !== der.length) throw new CsrError('malformed CSR: not a DER SEQUENCE');
    const [info, algorithm, signature] = readChildren(outer.content);
    if (!info || !algorithm || signature?.tag !== 0x03) throw new CsrError('malformed CSR: expected certificationRequestInfo, signatureAlgorithm and signature');
    const [version, subject, spki] = readChildren(info.content);
    if (version?.tag !== 0x02 || version.content.length !== 1 || version.content[0] !== 0) throw new CsrError('unsupported CSR version (must be v1)');
    if (subject?.tag !== 0x30 || spki?.tag !== 0x30) throw new CsrError('malformed CSR: malformed subject or public key');
    const publicKey = importPublicKey(spki.raw);
    let kind: KeyKind;
    try {
      kind = keyKind(publicKey);
    } catch (error) {
      // A well-formed CSR for a key meshfed does not accept: say just that, not "malformed".
      throw new CsrError((error as Error).message);
    }
    const [algorithmOid] = readChildren(algorithm.content);
    const oid = algorithmOid?.tag === 0x06 ? decodeOid(algorithmOid.content) : '';
    const hash = CSR_SIGNATURE_HASHES.get(oid);
    if (!hash) throw new CsrError(`unsupported CSR signature algorithm ${oid || '(missing)'}`);
    if (signature.content[0] !== 0 || !verify(hash, info.raw, publicKey, signature.content.subarray(1))) {
      throw new CsrError('CSR signature does not verify: the request was not signed by the key it carries');
    }
    return { spki: Buffer.from(spki.raw), publicKey, keyKind: kind, commonName: commonNameOf(subject.content), requestedSans: requestedSans(info.content) };
  } catch (error) {
    if (error instanceof CsrError) throw error;
    throw new CsrError(`malformed CSR: ${(error as Error).message}`);
  }
}

// SubjectPublicKeyInfo prefixes of uncompressed P-256 and P-384 points (id-ecPublicKey + named curve).
const EC_SPKI_PREFIXES = [
  { crv: 'P-256', prefix: Buffer.from('3059301306072a8648ce3d020106082a8648ce3d030107034200', 'hex'), size: 32 },
  { crv: 'P-384', prefix: Buffer.from('3076301006072a8648ce3d020106052b81040022036200', 'hex'), size: 48 },
];

/**
 * OpenSSL 3 decodes a DER public key about twice as slowly as Node builds the same key
 * from JWK coordinates (which still checks the point is on the curve), and key import is
 * the largest cost of signing a CSR: standard EC keys take the fast path.
 */
function importPublicKey(spki: Buffer): KeyObject {
  for (const { crv, prefix, size } of EC_SPKI_PREFIXES) {
    if (spki.length === prefix.length + 1 + 2 * size && spki.subarray(0, prefix.length).equals(prefix) && spki[prefix.length] === 0x04) {
      const point = spki.subarray(prefix.length + 1);
      return createPublicKey({
        key: { kty: 'EC', crv, x: point.subarray(0, size).toString('base64url'), y: point.subarray(size).toString('base64url') },
        format: 'jwk',
      });
    }
  }
  return createPublicKey({ key: spki, format: 'der', type: 'spki' });
}

function toDer(input: Buffer | string): Buffer {
  const text = typeof input === 'string' ? input : input.toString('latin1');
  const pem = /-----BEGIN (?:NEW )?CERTIFICATE REQUEST-----([\s\S]*?)-----END (?:NEW )?CERTIFICATE REQUEST-----/.exec(text);
  if (pem) return Buffer.from((pem[1] ?? '').replace(/\s+/g, ''), 'base64');
  if (typeof input === 'string') throw new CsrError('no PEM "CERTIFICATE REQUEST" block found');
  return input;
}

function commonNameOf(name: Buffer): string | undefined {
  for (const rdn of readChildren(name)) {
    for (const atv of readChildren(rdn.content)) {
      const [type, value] = readChildren(atv.content);
      if (type && value && decodeOid(type.content) === COMMON_NAME) return value.content.toString('utf8');
    }
  }
  return undefined;
}

const GENERAL_NAME_LABELS: Record<number, string> = { 0x81: 'email', 0x82: 'DNS', 0x86: 'URI', 0x87: 'IP' };

function requestedSans(info: Buffer): string[] {
  const attributes = readChildren(info).find((element) => element.tag === 0xa0);
  const out: string[] = [];
  for (const attribute of attributes ? readChildren(attributes.content) : []) {
    const [type, values] = readChildren(attribute.content);
    if (!type || !values || decodeOid(type.content) !== EXTENSION_REQUEST) continue;
    for (const extensions of readChildren(values.content)) {
      for (const ext of readChildren(extensions.content)) {
        const parts = readChildren(ext.content);
        const value = parts[parts.length - 1];
        if (!parts[0] || decodeOid(parts[0].content) !== SUBJECT_ALT_NAME || !value) continue;
        for (const name of readChildren(readElement(value.content).content)) {
          const label = GENERAL_NAME_LABELS[name.tag] ?? `tag ${name.tag}`;
          out.push(`${label}:${name.tag === 0x87 ? name.content.toString('hex') : name.content.toString('latin1')}`);
        }
      }
    }
  }
  return out;
}

export interface CsrOptions {
  subject?: DistinguishedName;
  /** URI SANs to request (a CA ignores them; useful to prove exactly that) */
  uris?: string[];
}

/** Builds a PKCS#10 CSR signed by `key`, PEM-encoded. */
export function createCsr(key: KeyObject, options: CsrOptions = {}): string {
  const attributes = options.uris?.length
    ? [
        sequence(
          objectIdentifier(EXTENSION_REQUEST),
          set(
            sequence(
              sequence(
                objectIdentifier(SUBJECT_ALT_NAME),
                octetString(sequence(...options.uris.map((uri) => implicitPrimitive(6, Buffer.from(uri, 'ascii'))))),
              ),
            ),
          ),
        ),
      ]
    : [];
  const info = sequence(smallInteger(0), encodeName(options.subject ?? {}), spkiDer(key), implicitConstructed(0, ...attributes));
  const algorithm = signatureAlgorithmFor(key);
  return derToPem(sequence(info, algorithm.der, bitString(sign(algorithm.hash, info, key))), 'CERTIFICATE REQUEST');
}

