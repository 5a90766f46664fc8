/**
 * HTTPS for the API (serve --api-tls): the server's certificate is an SVID the federation's own CA issues
 * (spiffe://TD/ns/meshfed-system/sa/meshfed-api, under a cluster intermediate), renewed like the CA service's;
 * client certificates are verified against the trust bundle, and their SPIFFE ID is mapped to a role by the
 * identities file (--api-identities): a YAML or JSON map of SPIFFE ID → viewer | operator | admin.
 */
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { apiRoleSchema, type ApiRole } from '../model/api-roles.js';
import type { TrustAuthority } from '../trust/authority.js';
import { createCsr } from '../trust/csr.js';
import { generateKey, privateKeyPem } from '../trust/keys.js';
import { parseSpiffeId, workloadSpiffeId } from '../trust/spiffe.js';

export const API_SERVER_NAMESPACE = 'meshfed-system';
export const API_SERVER_SERVICE_ACCOUNT = 'meshfed-api';
const MAX_IDENTITIES_BYTES = 256 * 1024;
const MAX_IDENTITIES = 1000;

export class ApiTlsError extends Error {}

export interface ApiTlsMaterial {
  /** the server's key (PEM) */
  key: string;
  /** leaf then intermediate */
  cert: string;
  /** the trust bundle client certificates must chain to */
  ca: string;
}

export interface ApiTls {
  /** the SPIFFE ID of the server's certificate, which clients check instead of a host name */
  readonly serverId: string;
  readonly identities: ReadonlyMap<string, ApiRole>;
  material(): ApiTlsMaterial;
  /** new material when it is due (the bundle or the intermediate changed, or half the leaf's life is gone), else undefined */
  renewDue(now?: Date): ApiTlsMaterial | undefined;
}

/** The identities file's content: SPIFFE ID → role, every ID in `trustDomain`. */
export function parseApiIdentities(text: string, where: string, trustDomain: string): Map<string, ApiRole> {
  let value: unknown;
  try {
    value = parseYaml(text);
  } catch (error) {
    throw new ApiTlsError(`${where}: not YAML or JSON: ${((error as Error).message.split('\n')[0] ?? '').slice(0, 200)}`);
  }
  const parsed = z.record(z.string(), apiRoleSchema).safeParse(value ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ApiTlsError(`${where}: expected a map of SPIFFE ID → role${issue ? ` (${issue.path.map(String).join('.') || 'top level'}: ${issue.message})` : ''}`);
  }
  const entries = Object.entries(parsed.data);
  if (entries.length > MAX_IDENTITIES) throw new ApiTlsError(`${where}: at most ${MAX_IDENTITIES} identities`);
  for (const [id] of entries) {
    let domain: string;
    try {
      domain = parseSpiffeId(id).trustDomain;
    } catch (error) {
      throw new ApiTlsError(`${where}: ${(error as Error).message}`);
    }
    if (domain !== trustDomain) throw new ApiTlsError(`${where}: ${id} is outside trust domain ${trustDomain}: only the federation's own certificates are accepted`);
  }
  return new Map(entries);
}

export function loadApiIdentities(path: string, trustDomain: string): Map<string, ApiRole> {
  if (!existsSync(path)) throw new ApiTlsError(`--api-identities: ${path} does not exist`);
  const stat = statSync(path);
  if (!stat.isFile() || stat.size > MAX_IDENTITIES_BYTES) throw new ApiTlsError(`--api-identities: ${path} is not a file of at most ${MAX_IDENTITIES_BYTES} bytes`);
  return parseApiIdentities(readFileSync(path, 'utf8'), path, trustDomain);
}

/** HTTPS material from the federation's CA: an SVID under `cluster`'s intermediate, and its trust bundle. */
export function apiTlsFromAuthority(authority: TrustAuthority, cluster: string, identities: ReadonlyMap<string, ApiRole>): ApiTls {
  const serverId = workloadSpiffeId(authority.trustDomain, API_SERVER_NAMESPACE, API_SERVER_SERVICE_ACCOUNT);
  const issue = (now: Date): { material: ApiTlsMaterial; issuedAt: number; notAfter: number; bundleSequence: number; intermediate: string | undefined } => {
    const key = generateKey('ec-p256');
    const svid = authority.signWorkload({ cluster, csr: createCsr(key), spiffeId: serverId, now });
    return {
      material: { key: privateKeyPem(key), cert: svid.certChain.slice(0, -1).join(''), ca: authority.bundlePem() },
      issuedAt: now.getTime(),
      notAfter: svid.notAfter.getTime(),
      bundleSequence: authority.bundleSequence,
      intermediate: authority.intermediateCertificate(cluster)?.serialNumber,
    };
  };
  let current = issue(new Date());
  return {
    serverId,
    identities,
    material: () => current.material,
    renewDue: (now = new Date()) => {
      const due =
        current.bundleSequence !== authority.bundleSequence ||
        current.intermediate !== authority.intermediateCertificate(cluster)?.serialNumber ||
        now.getTime() >= current.issuedAt + (current.notAfter - current.issuedAt) / 2;
      if (!due) return undefined;
      current = issue(now);
      return current.material;
    },
  };
}

/** The serial of the server certificate in `material` (for logs). */
export const serverSerial = (material: ApiTlsMaterial): string => new X509Certificate(material.cert).serialNumber;
