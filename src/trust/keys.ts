import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import type { KeyType } from '../model/trust-policy.js';
import { nullValue, objectIdentifier, readChildren, readElement, sequence } from './der.js';

/** The key kinds meshfed can meet: its own CA keys and the keys in workload CSRs. */
export type KeyKind = KeyType | 'rsa-2048';

export interface SignatureAlgorithm {
  oid: string;
  /** the AlgorithmIdentifier, DER-encoded */
  der: Buffer;
  /** the hash name for crypto.sign / crypto.verify */
  hash: 'sha256' | 'sha384';
  name: string;
}

const ECDSA_SHA256: SignatureAlgorithm = {
  oid: '1.2.840.10045.4.3.2',
  der: sequence(objectIdentifier('1.2.840.10045.4.3.2')),
  hash: 'sha256',
  name: 'ecdsa-with-SHA256',
};
const ECDSA_SHA384: SignatureAlgorithm = {
  oid: '1.2.840.10045.4.3.3',
  der: sequence(objectIdentifier('1.2.840.10045.4.3.3')),
  hash: 'sha384',
  name: 'ecdsa-with-SHA384',
};
const RSA_SHA256: SignatureAlgorithm = {
  oid: '1.2.840.113549.1.1.11',
  der: sequence(objectIdentifier('1.2.840.113549.1.1.11'), nullValue()),
  hash: 'sha256',
  name: 'sha256WithRSAEncryption',
};

export function generateKey(type: KeyType): KeyObject {
  switch (type) {
    case 'ec-p256':
      return generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    case 'ec-p384':
      return generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey;
    case 'rsa-3072':
      return generateKeyPairSync('rsa', { modulusLength: 3072 }).privateKey;
    case 'rsa-4096':
      return generateKeyPairSync('rsa', { modulusLength: 4096 }).privateKey;
  }
}

/** Names the kind of a key, or throws a message naming what is unsupported. */
export function keyKind(key: KeyObject): KeyKind {
  const details = key.asymmetricKeyDetails;
  if (key.asymmetricKeyType === 'ec') {
    if (details?.namedCurve === 'prime256v1') return 'ec-p256';
    if (details?.namedCurve === 'secp384r1') return 'ec-p384';
    throw new Error(`unsupported EC curve ${details?.namedCurve ?? 'unknown'}: use P-256 or P-384`);
  }
  if (key.asymmetricKeyType === 'rsa') {
    const bits = details?.modulusLength ?? 0;
    if (bits === 2048) return 'rsa-2048';
    if (bits === 3072) return 'rsa-3072';
    if (bits === 4096) return 'rsa-4096';
    throw new Error(`unsupported RSA modulus of ${bits} bits: use 2048, 3072 or 4096`);
  }
  throw new Error(`unsupported key type ${key.asymmetricKeyType ?? 'unknown'}: use ECDSA (P-256, P-384) or RSA`);
}

/** The algorithm a CA key signs with. */
export function signatureAlgorithmFor(key: KeyObject): SignatureAlgorithm {
  const kind = keyKind(key);
  if (kind === 'ec-p256') return ECDSA_SHA256;
  if (kind === 'ec-p384') return ECDSA_SHA384;
  return RSA_SHA256;
}

/** Hashes of the signature algorithms accepted on CSRs, by OID. */
export const CSR_SIGNATURE_HASHES: ReadonlyMap<string, string> = new Map([
  ['1.2.840.10045.4.3.2', 'sha256'],
  ['1.2.840.10045.4.3.3', 'sha384'],
  ['1.2.840.10045.4.3.4', 'sha512'],
  ['1.2.840.113549.1.1.11', 'sha256'],
  ['1.2.840.113549.1.1.12', 'sha384'],
  ['1.2.840.113549.1.1.13', 'sha512'],
]);

export function spkiDer(key: KeyObject): Buffer {
  const publicKey = key.type === 'private' ? createPublicKey(key) : key;
  return publicKey.export({ type: 'spki', format: 'der' });
}

/** RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits. */
export function keyIdentifier(spki: Buffer): Buffer {
  return createHash('sha1').update(subjectPublicKeyBits(spki)).digest();
}

/** The SPKI is SEQUENCE { AlgorithmIdentifier, BIT STRING }; the key bits are that BIT STRING's content after its unused-bits octet. */
function subjectPublicKeyBits(spki: Buffer): Buffer {
  const [, bitString] = readChildren(readElement(spki).content);
  if (!bitString) throw new Error('malformed SubjectPublicKeyInfo');
  return bitString.content.subarray(1);
}

export function parsePrivateKeyPem(pem: string, what: string): KeyObject {
  try {
    const key = createPrivateKey({ key: pem, format: 'pem' });
    keyKind(key);
    return key;
  } catch (error) {
    throw new Error(`${what}: not a usable private key (${(error as Error).message})`, { cause: error });
  }
}

export function privateKeyPem(key: KeyObject): string {
  return key.export({ type: 'pkcs8', format: 'pem' }).toString();
}

export function publicKeysEqual(a: KeyObject, b: KeyObject): boolean {
  return spkiDer(a).equals(spkiDer(b));
}
