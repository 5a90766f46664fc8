export interface SpiffeId {
  trustDomain: string;
  path: string;
}

const MAX_SPIFFE_ID_BYTES = 2048;

/** Parses a SPIFFE ID by the rules of the SPIFFE-ID spec; the error says which rule was broken. */
export function parseSpiffeId(text: string): SpiffeId {
  if (Buffer.byteLength(text) > MAX_SPIFFE_ID_BYTES) throw new Error(`SPIFFE ID longer than ${MAX_SPIFFE_ID_BYTES} bytes`);
  const match = /^spiffe:\/\/([^/?#]*)(\/[^?#]*)?$/.exec(text);
  if (!match) throw new Error(`"${text}" is not a SPIFFE ID: expected spiffe://TRUST-DOMAIN/PATH, without query or fragment`);
  const trustDomain = match[1] ?? '';
  const path = match[2] ?? '';
  if (!/^[a-z0-9._-]+$/.test(trustDomain)) {
    throw new Error(`SPIFFE ID "${text}": trust domain must be non-empty lowercase letters, digits, ".", "-" or "_" (no port, no user info)`);
  }
  if (path === '') throw new Error(`SPIFFE ID "${text}" names a trust domain, not a workload: it needs a path`);
  for (const segment of path.slice(1).split('/')) {
    if (segment === '') throw new Error(`SPIFFE ID "${text}": path segments must not be empty (no "//" and no trailing "/")`);
    if (segment === '.' || segment === '..') throw new Error(`SPIFFE ID "${text}": path segments must not be "." or ".."`);
    if (!/^[A-Za-z0-9._-]+$/.test(segment)) throw new Error(`SPIFFE ID "${text}": path segments may contain only letters, digits, ".", "-" and "_"`);
  }
  return { trustDomain, path };
}

/** Istio's workload identity form. */
export const workloadSpiffeId = (trustDomain: string, namespace: string, serviceAccount: string): string =>
  `spiffe://${trustDomain}/ns/${namespace}/sa/${serviceAccount}`;
