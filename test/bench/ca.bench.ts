/**
 * Workload certificate issuance against its floor, the raw ECDSA P-256 signature.
 *
 * Measured in one process, one run, interleaved (every measurement once per round, three
 * rounds) so that CPU frequency drift and background load hit all of them alike:
 *
 *   raw sign      crypto.sign('sha256', ~400-byte TBS-sized buffer, P-256 key): the reference
 *   raw verify    crypto.verify of that signature: the floor of CSR verification
 *   parseCsr      CSR parsing + key import + the CSR's own signature verification (src/trust/csr.ts)
 *   from CSR      TrustAuthority.signWorkload: end to end from a CSR, as the CA service calls it
 *   template      LeafIssuer.issue with a pre-parsed SPKI: issuance alone, no CSR
 *
 * All signing uses the same key: the cluster intermediate's (P-256 under the default policy).
 */
import { generateKeyPairSync, randomBytes, sign, verify, X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { TrustAuthority } from '../../src/trust/authority.js';
import { createCsr, parseCsr } from '../../src/trust/csr.js';
import { keyKind, parsePrivateKeyPem, spkiDer } from '../../src/trust/keys.js';
import { issuerInfo, LeafIssuer, parseCertificates } from '../../src/trust/x509.js';
import { median } from './measure.js';

const TRUST_DOMAIN = 'bench.test';
const CLUSTER = 'east-1';
/** the size of a typical SVID TBSCertificate */
const TBS_BYTES = 400;
/** distinct workload keys and CSRs, cycled through */
const POOL = 64;
const ROUNDS = 3;
const WARMUP = { ops: 300, ms: 500 };
const LIMIT = { ops: 5000, ms: 3000 };
/** the issue's target for issuance throughput, as a fraction of the raw signing rate */
const TARGET = 0.25;
const BACKDATE_MS = 60_000;
const TTL_MS = 24 * 3600_000;

interface Measurement {
  name: string;
  /** one operation; returns the size of what it produced, summed so nothing is optimised away */
  op: (i: number) => number;
}

interface Sample {
  ops: number;
  seconds: number;
}

let sink = 0;

/** Runs `op` until `limit.ops` operations or `limit.ms` milliseconds, whichever comes first. */
function measure(op: (i: number) => number, limit: { ops: number; ms: number }): Sample {
  const capNs = BigInt(limit.ms) * 1_000_000n;
  const start = process.hrtime.bigint();
  let ops = 0;
  while (ops < limit.ops) {
    sink += op(ops);
    ops += 1;
    // the clock is read every 8 operations: each one costs tens of microseconds, the clock tens of nanoseconds
    if ((ops & 7) === 0 && process.hrtime.bigint() - start >= capNs) break;
  }
  return { ops, seconds: Number(process.hrtime.bigint() - start) / 1e9 };
}

const fmtRate = (rate: number): string => Math.round(rate).toLocaleString('en-US');
const pct = (fraction: number): string => `${(fraction * 100).toFixed(1)}%`;

export async function run(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'meshfed-bench-'));
  try {
    await bench(join(dir, 'ca'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function bench(stateDir: string): Promise<void> {
  // ---- setup: a real CA, its intermediate for east-1, and pre-made workload CSRs ----
  // An empty env: no MESHFED_CA_PASSPHRASE, so keys are stored unencrypted, as in a plain `ca init`.
  const { authority } = TrustAuthority.init(stateDir, { trustDomain: TRUST_DOMAIN }, {});
  authority.issueIntermediate(CLUSTER);
  const material = authority.deliver(CLUSTER);
  const intermediateKey = parsePrivateKeyPem(material['ca-key.pem'], 'intermediate key');
  const [intermediate] = parseCertificates(material['ca-cert.pem'], 'intermediate certificate');
  if (!intermediate) throw new Error('no intermediate certificate');
  const intermediatePublic = intermediate.publicKey;
  const leafIssuer = new LeafIssuer(issuerInfo(intermediate, intermediateKey));

  const spiffeIds = Array.from({ length: POOL }, (_, i) => `spiffe://${TRUST_DOMAIN}/ns/default/sa/bench-${i}`);
  const workloadKeys = Array.from({ length: POOL }, () => generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey);
  // Istio's agent puts the SPIFFE ID in the CSR's SAN; the CA ignores it, but it is part of what gets parsed.
  const csrs = workloadKeys.map((key, i) => createCsr(key, { uris: [spiffeIds[i] ?? ''] }));
  const spkis = workloadKeys.map((key) => spkiDer(key));
  const at = <T>(pool: readonly T[], i: number): T => {
    const value = pool[i % pool.length];
    if (value === undefined) throw new Error('empty pool');
    return value;
  };

  const tbs = randomBytes(TBS_BYTES);
  const signature = sign('sha256', tbs, intermediateKey);

  // The setup must be what it claims before any number means anything.
  const probe = authority.signWorkload({ cluster: CLUSTER, csr: at(csrs, 0), spiffeId: at(spiffeIds, 0) });
  const [leafPem] = probe.certChain;
  if (!leafPem || !new X509Certificate(leafPem).verify(intermediatePublic)) throw new Error('signWorkload did not produce a leaf signed by the intermediate');
  const templateLeaf = new X509Certificate(
    leafIssuer.issue({ spki: at(spkis, 0), spiffeId: at(spiffeIds, 0), notBefore: new Date(), notAfter: new Date(Date.now() + TTL_MS) }, false),
  );
  if (!templateLeaf.verify(intermediatePublic)) throw new Error('LeafIssuer did not produce a leaf signed by the intermediate');
  const leafSize = templateLeaf.raw.length;

  // ---- the measurements ----
  const RAW_SIGN = 'raw ECDSA P-256 sign (reference)';
  const RAW_VERIFY = 'raw ECDSA P-256 verify';
  const PARSE_CSR = 'parseCsr (parse + key import + verify)';
  const FROM_CSR = 'signWorkload, end to end from CSR';
  const TEMPLATE = 'LeafIssuer.issue (template path)';
  const measurements: Measurement[] = [
    { name: RAW_SIGN, op: () => sign('sha256', tbs, intermediateKey).length },
    { name: RAW_VERIFY, op: () => (verify('sha256', tbs, intermediatePublic, signature) ? 1 : 0) },
    { name: PARSE_CSR, op: (i) => parseCsr(at(csrs, i), 8192).spki.length },
    { name: FROM_CSR, op: (i) => authority.signWorkload({ cluster: CLUSTER, csr: at(csrs, i), spiffeId: at(spiffeIds, i) }).certChain.length },
    {
      name: TEMPLATE,
      op: (i) => {
        const now = Date.now();
        return leafIssuer.issue({ spki: at(spkis, i), spiffeId: at(spiffeIds, i), notBefore: new Date(now - BACKDATE_MS), notAfter: new Date(now + TTL_MS) }, false).length;
      },
    },
  ];

  console.log(`node ${process.version}, ${cpus()[0]?.model.trim() ?? 'unknown CPU'} x${cpus().length}`);
  console.log(
    `CA key ${keyKind(intermediateKey)}, ${POOL} distinct P-256 workload CSRs (${at(csrs, 0).length} bytes PEM), leaf certificate ${leafSize} bytes DER, reference data ${TBS_BYTES} bytes`,
  );
  console.log(
    `method: warm-up ${WARMUP.ops} ops or ${WARMUP.ms} ms each; then ${ROUNDS} interleaved rounds, each measurement up to ${LIMIT.ops} ops or ${LIMIT.ms / 1000} s, whichever comes first; median rate reported`,
  );

  for (const m of measurements) measure(m.op, WARMUP);
  const rates = new Map<string, number[]>(measurements.map((m) => [m.name, []]));
  for (let round = 0; round < ROUNDS; round++) {
    for (const m of measurements) {
      // let pending I/O and timers run between measurements rather than inside one
      await new Promise<void>((resolve) => setImmediate(resolve));
      const sample = measure(m.op, LIMIT);
      rates.get(m.name)?.push(sample.ops / sample.seconds);
    }
  }

  const medianOf = (name: string): number => median(rates.get(name) ?? []);
  const reference = medianOf(RAW_SIGN);
  const nameWidth = Math.max(...measurements.map((m) => m.name.length));
  const header = `${'measurement'.padEnd(nameWidth)}  ${'ops/s'.padStart(9)}  ${'µs/op'.padStart(8)}  ${'vs raw sign'.padStart(11)}  rounds (ops/s)`;
  console.log(`\n${header}\n${'-'.repeat(header.length + 12)}`);
  for (const m of measurements) {
    const rate = medianOf(m.name);
    const samples = (rates.get(m.name) ?? []).map(fmtRate).join(' / ');
    console.log(
      `${m.name.padEnd(nameWidth)}  ${fmtRate(rate).padStart(9)}  ${(1e6 / rate).toFixed(1).padStart(8)}  ${pct(rate / reference).padStart(11)}  ${samples}`,
    );
  }

  // Where the time of one end-to-end issuance goes, from the medians.
  const us = (name: string): number => 1e6 / medianOf(name);
  const total = us(FROM_CSR);
  const parts: [string, number][] = [
    [`CSR parse + key import + verify (the signature check alone ~${us(RAW_VERIFY).toFixed(0)} µs)`, us(PARSE_CSR)],
    ['template issuance (encode + sign)', us(TEMPLATE)],
  ];
  parts.push(['remainder (SPIFFE ID, policy, validity, PEM chain)', total - parts.reduce((sum, [, value]) => sum + value, 0)]);
  console.log(`\nwhere one end-to-end issuance goes (${total.toFixed(1)} µs, from the medians):`);
  for (const [what, value] of parts) console.log(`  ${value.toFixed(1).padStart(7)} µs  ${pct(value / total).padStart(6)}  ${what}`);
  console.log(`raw verify costs ${(us(RAW_VERIFY) / us(RAW_SIGN)).toFixed(1)}x a raw sign; raw verify alone is ${pct(us(RAW_VERIFY) / total)} of an end-to-end issuance`);

  const template = medianOf(TEMPLATE) / reference;
  const fromCsr = medianOf(FROM_CSR) / reference;
  const verdict = (fraction: number): string => (fraction >= TARGET ? 'met' : 'NOT met');
  console.log(`\nissuance (template path) = ${pct(template)} of raw ECDSA P-256 signing rate`);
  console.log(`issuance from CSR (incl. CSR verification) = ${pct(fromCsr)} of raw signing rate`);
  console.log(`target (issue): issuance >= ${pct(TARGET)} of raw signing rate — template path: ${verdict(template)}; from CSR: ${verdict(fromCsr)}`);
  if (sink === 0) console.log('(no output was produced)');
}
