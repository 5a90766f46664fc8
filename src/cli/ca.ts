import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve, isAbsolute } from 'node:path';
import { Command, Option } from 'commander';
import { parse as parseYaml, stringify } from 'yaml';
import { KEY_TYPES, trustPolicySchema, type KeyType, type TrustPolicy } from '../model/trust-policy.js';
import { signIntermediateCsr, TrustAuthority, type ClusterMaterial, type RotationStatus } from '../trust/authority.js';
import { writeFileAtomic } from '../store/atomic.js';
import { issueToken } from '../trust/tokens.js';
import { parseDuration } from '../model/duration.js';
import { call, connection, withServerOptions } from './api-client.js';
import { UsageError } from './errors.js';
import { dataFormat, print, table } from './output.js';

export const DEFAULT_STATE_DIR = '.meshfed';

/** The CA owns every file of its own directory, so it lives in a subdirectory of the manager's state dir. */
export const caDir = (stateDir: string): string => join(stateDir, 'ca');

const MAX_INPUT_FILE_BYTES = 1024 * 1024;

/** Reads a file given on the command line, with a size limit and an error that names the option. */
function readInput(path: string, what: string): string {
  if (!existsSync(path)) throw new UsageError(`${what}: ${path} does not exist`);
  const size = statSync(path).size;
  if (size > MAX_INPUT_FILE_BYTES) throw new UsageError(`${what}: ${path} is ${size} bytes; the limit is ${MAX_INPUT_FILE_BYTES}`);
  return readFileSync(path, 'utf8');
}

/** Certificates and CSRs are not secret: written 0644 to --out, or printed. */
function emit(pem: string, out: string | undefined): void {
  if (out) writeFileAtomic(out, pem, 0o644);
  else process.stdout.write(pem);
}

function managerStateDir(command: Command): string {
  const opts = command.optsWithGlobals<{ stateDir?: string }>();
  return resolve(opts.stateDir ?? process.env.MESHFED_STATE_DIR ?? DEFAULT_STATE_DIR);
}

/** The CA's directory inside the state dir the command was given. */
const stateDir = (command: Command): string => caDir(managerStateDir(command));

const outputOption = (formats: readonly string[] = ['text', 'json', 'yaml']): Option =>
  new Option('-o, --output <format>', `output format: ${formats.join('|')}`).default('text');

function loadPolicy(path: string | undefined): TrustPolicy | undefined {
  if (path === undefined) return undefined;
  const parsed = trustPolicySchema.safeParse(parseYaml(readInput(path, '--policy')));
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new UsageError(`--policy ${path}: ${issue ? `${issue.path.join('.') || '(top level)'}: ${issue.message}` : 'invalid'}`);
  }
  return parsed.data;
}

function keyTypeOption(): Option {
  return new Option('--key-type <type>', 'root key type').choices(KEY_TYPES);
}

function rootInput(opts: { importRoot?: string; importKey?: string }): { certPem: string; keyPem?: string } | undefined {
  if (opts.importKey && !opts.importRoot) throw new UsageError('--import-key needs --import-root');
  if (!opts.importRoot) return undefined;
  return {
    certPem: readInput(opts.importRoot, '--import-root'),
    ...(opts.importKey ? { keyPem: readInput(opts.importKey, '--import-key') } : {}),
  };
}

/**
 * A rotation step through a running manager's API (POST /api/v1/trust/rotation; status: GET /api/v1/trust). In
 * Kubernetes mode only the leader takes a step: another replica refuses, naming the leader.
 */
async function rotationThroughApi(command: Command, action: 'start' | 'advance' | 'abort' | 'status'): Promise<RotationStatus> {
  const conn = connection(command);
  if (action === 'status') return ((await call(conn, 'GET', '/api/v1/trust')).data as { rotation: RotationStatus }).rotation;
  return (await call(conn, 'POST', '/api/v1/trust/rotation', { action })).data as RotationStatus;
}

function rotationText(status: RotationStatus): string {
  const lines = [`phase: ${status.phase}`, `bundle sequence: ${status.bundleSequence}`];
  if (status.oldRootId) lines.push(`old root: ${status.oldRootId}`, `new root: ${status.newRootId ?? ''}`);
  for (const step of status.steps) {
    lines.push(`  [${step.done ? 'x' : ' '}] ${step.step}${step.waitingFor.length ? ` (waiting for ${step.waitingFor.join(', ')})` : ''}`);
  }
  lines.push(`next: ${status.next}`);
  return lines.join('\n') + '\n';
}

function secretManifest(cluster: string, material: ClusterMaterial): string {
  const data = Object.fromEntries(Object.entries(material).map(([name, value]) => [name, Buffer.from(value).toString('base64')]));
  return stringify({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {
      name: 'cacerts',
      namespace: 'istio-system',
      labels: { 'app.kubernetes.io/managed-by': 'meshfed', 'meshfed.io/cluster': cluster },
    },
    type: 'Opaque',
    data,
  });
}

function outsideStateDir(path: string, dir: string): string {
  const target = resolve(path);
  const rel = relative(dir, target);
  if (rel === '' || (!rel.startsWith('..') && !isAbsolute(rel))) {
    throw new UsageError(`${path} is inside the state dir ${dir}: an offline root key must be kept elsewhere`);
  }
  return target;
}

export function caCommand(): Command {
  const ca = new Command('ca')
    .description('the federation trust domain: root CA, per-cluster intermediates, workload certificates, rotation')
    .option('--state-dir <dir>', `the manager's state dir; the CA keeps its state in its ca/ subdirectory (env MESHFED_STATE_DIR, default ${DEFAULT_STATE_DIR})`);

  ca.command('init')
    .description('create the root CA of a new trust domain')
    .requiredOption('--trust-domain <domain>', 'the SPIFFE trust domain, e.g. mesh.example.com')
    .addOption(keyTypeOption())
    .option('--root-ttl <duration>', 'root lifetime (default from the trust policy: 10y)')
    .option('--policy <file>', 'trust policy YAML (default: ca/trust-policy.yaml values)')
    .option('--import-root <file>', 'use an existing root certificate (PEM) instead of generating one')
    .option('--import-key <file>', "the imported root's private key; without it the root is offline")
    .option('--offline-root', 'generate the root but keep its key out of the state dir')
    .option('--root-key-out <file>', 'with --offline-root: where to write the root key (0600), outside the state dir')
    .addOption(outputOption())
    .action(function (this: Command, opts: { trustDomain: string; keyType?: KeyType; rootTtl?: string; policy?: string; importRoot?: string; importKey?: string; offlineRoot?: boolean; rootKeyOut?: string; output: string }) {
      const format = dataFormat(opts.output);
      const dir = stateDir(this);
      if (opts.offlineRoot && !opts.rootKeyOut) throw new UsageError('--offline-root needs --root-key-out FILE: the root key must be written somewhere you keep offline');
      if (opts.rootKeyOut && !opts.offlineRoot) throw new UsageError('--root-key-out only goes with --offline-root');
      if (opts.offlineRoot && opts.importRoot) throw new UsageError('--offline-root generates a root; to use an existing offline root, give --import-root without --import-key');
      if (opts.keyType && opts.importRoot) throw new UsageError('--key-type does not apply to an imported root');
      const keyOut = opts.rootKeyOut ? outsideStateDir(opts.rootKeyOut, managerStateDir(this)) : undefined;
      if (keyOut && existsSync(keyOut)) throw new UsageError(`${keyOut} already exists; refusing to overwrite a key`);
      const policy = loadPolicy(opts.policy);
      const importRoot = rootInput(opts);
      const { authority, offlineRootKeyPem } = TrustAuthority.init(dir, {
        trustDomain: opts.trustDomain,
        ...(opts.keyType ? { keyType: opts.keyType } : {}),
        ...(opts.rootTtl ? { rootTtl: opts.rootTtl } : {}),
        ...(policy ? { policy } : {}),
        ...(importRoot ? { importRoot } : {}),
        ...(opts.offlineRoot ? { offlineRoot: true } : {}),
      });
      if (keyOut && offlineRootKeyPem) writeFileAtomic(keyOut, offlineRootKeyPem);
      const root = authority.rootById(authority.activeRootId);
      const summary = {
        trustDomain: authority.trustDomain,
        stateDir: dir,
        root: { id: authority.activeRootId, subject: root.subject.replace(/\n/g, ', '), notAfter: new Date(root.validTo).toISOString(), offline: authority.isOfflineRoot() },
        ...(keyOut ? { rootKeyWrittenTo: keyOut } : {}),
      };
      print(format, summary, () =>
        [
          `initialised trust domain ${summary.trustDomain} in ${dir}`,
          `root ${summary.root.id} valid until ${summary.root.notAfter}${summary.root.offline ? ' (offline: its key is not in the state dir)' : ''}`,
          ...(keyOut ? [`root key written to ${keyOut}: move it offline`] : []),
          `next: meshfed ca intermediate CLUSTER --out DIR`,
          '',
        ].join('\n'),
      );
    });

  ca.command('status')
    .description('roots, intermediates and what each cluster has been given')
    .addOption(outputOption())
    .action(function (this: Command, opts: { output: string }) {
      const format = dataFormat(opts.output);
      const authority = TrustAuthority.open(stateDir(this));
      const roots = authority.roots().map((cert) => ({ notAfter: new Date(cert.validTo).toISOString(), subject: cert.subject.replace(/\n/g, ', ') }));
      const data = {
        trustDomain: authority.trustDomain,
        bundleSequence: authority.bundleSequence,
        activeRootId: authority.activeRootId,
        roots,
        intermediates: authority.intermediates(),
        rotation: authority.rotationStatus(),
      };
      print(format, data, () =>
        [
          `trust domain ${data.trustDomain}, bundle sequence ${data.bundleSequence}, ${roots.length} root(s), active root ${data.activeRootId}`,
          '',
          table(
            ['CLUSTER', 'SERIAL', 'NOT AFTER', 'RENEW AFTER', 'ROOT', 'DELIVERED'],
            data.intermediates.map((i) => [i.cluster, i.serial ?? (i.pendingCsr ? '(CSR pending)' : '-'), i.notAfter ?? '-', i.renewAfter ?? '-', (i.rootId ?? '-').slice(0, 12), i.delivered ? 'yes' : 'no']),
          ),
          rotationText(data.rotation),
        ].join('\n'),
      );
    });

  ca.command('intermediate')
    .description("issue a cluster's intermediate CA (once), and export it in Istio's plug-in CA layout")
    .argument('<cluster>', 'cluster name (DNS-1123 label)')
    .option('--ttl <duration>', 'intermediate lifetime (default from the trust policy: 1y)')
    .option('--renew', 'issue a new intermediate even if the cluster has one')
    .option('--out <dir>', 'write ca-cert.pem, ca-key.pem, root-cert.pem, cert-chain.pem into this directory')
    .addOption(outputOption(['text', 'json', 'yaml', 'secret']))
    .action(function (this: Command, cluster: string, opts: { ttl?: string; renew?: boolean; out?: string; output: string }) {
      const format = dataFormat(opts.output, ['text', 'json', 'yaml', 'secret']);
      if (opts.out && format === 'secret') throw new UsageError('choose one of --out DIR and -o secret');
      const authority = TrustAuthority.open(stateDir(this));
      const existing = authority.intermediateCertificate(cluster);
      if (opts.ttl && existing && !opts.renew) throw new UsageError(`cluster ${cluster} already has an intermediate; add --renew to issue a new one with --ttl`);
      const cert = !existing || opts.renew ? authority.issueIntermediate(cluster, opts.ttl ? { ttl: opts.ttl } : {}) : existing;
      if (format === 'secret') {
        process.stdout.write(secretManifest(cluster, authority.deliver(cluster)));
        return;
      }
      if (opts.out) {
        const material = authority.deliver(cluster);
        for (const [name, content] of Object.entries(material)) writeFileAtomic(join(opts.out, name), content, name === 'ca-key.pem' ? 0o600 : 0o644);
      }
      const data = { cluster, serial: cert.serialNumber, notAfter: new Date(cert.validTo).toISOString(), issued: !existing || opts.renew === true, ...(opts.out ? { writtenTo: resolve(opts.out) } : {}) };
      print(format, data, () =>
        `${data.issued ? 'issued' : 'existing'} intermediate for ${cluster}: serial ${data.serial}, valid until ${data.notAfter}\n` +
        (opts.out ? `wrote ca-cert.pem, ca-key.pem (0600), root-cert.pem, cert-chain.pem to ${data.writtenTo ?? ''}\n` : 'export it with --out DIR or -o secret\n'),
      );
    });

  ca.command('csr')
    .description('offline root, step 1: a new intermediate key for the cluster (kept in the state dir) and its CSR')
    .argument('<cluster>', 'cluster name')
    .option('--out <file>', 'write the CSR here instead of standard output')
    .action(function (this: Command, cluster: string, opts: { out?: string }) {
      emit(TrustAuthority.open(stateDir(this)).intermediateCsr(cluster), opts.out);
    });

  ca.command('sign-intermediate')
    .description('offline root, step 2 (run where the root key is): sign a cluster intermediate CSR')
    .requiredOption('--root-cert <file>', 'root certificate (PEM)')
    .requiredOption('--root-key <file>', 'root private key (PEM)')
    .requiredOption('--csr <file>', 'the CSR from "meshfed ca csr"')
    .requiredOption('--cluster <name>', 'the cluster the intermediate is for (its identity comes from here, not from the CSR)')
    .requiredOption('--trust-domain <domain>', 'the trust domain the intermediate is pinned to')
    .option('--ttl <duration>', 'intermediate lifetime (default 1y)')
    .option('--policy <file>', 'trust policy YAML')
    .option('--out <file>', 'write the certificate here instead of standard output')
    .action((opts: { rootCert: string; rootKey: string; csr: string; cluster: string; trustDomain: string; ttl?: string; policy?: string; out?: string }) => {
      const policy = loadPolicy(opts.policy);
      const pem = signIntermediateCsr({
        rootCertPem: readInput(opts.rootCert, '--root-cert'),
        rootKeyPem: readInput(opts.rootKey, '--root-key'),
        csrPem: readInput(opts.csr, '--csr'),
        cluster: opts.cluster,
        trustDomain: opts.trustDomain,
        ...(opts.ttl ? { ttl: opts.ttl } : {}),
        ...(policy ? { policy } : {}),
      });
      emit(pem, opts.out);
    });

  ca.command('import-intermediate')
    .description('offline root, step 3: take back the signed intermediate for the pending CSR')
    .argument('<cluster>', 'cluster name')
    .requiredOption('--cert <file>', 'the certificate from "meshfed ca sign-intermediate"')
    .action(function (this: Command, cluster: string, opts: { cert: string }) {
      const cert = TrustAuthority.open(stateDir(this)).importIntermediate(cluster, readInput(opts.cert, '--cert'));
      process.stdout.write(`imported intermediate for ${cluster}: serial ${cert.serialNumber}, valid until ${new Date(cert.validTo).toISOString()}\n`);
    });

  ca.command('sign')
    .description("sign a workload CSR as an X.509-SVID under a cluster's intermediate; prints the chain, leaf first")
    .requiredOption('--cluster <name>', 'the cluster whose intermediate signs')
    .requiredOption('--csr <file>', 'PKCS#10 CSR (PEM); only its key is used')
    .requiredOption('--spiffe-id <id>', 'the identity, spiffe://TRUST-DOMAIN/ns/NAMESPACE/sa/SERVICE-ACCOUNT')
    .option('--ttl <duration>', 'certificate lifetime (default 24h; the policy maximum is enforced)')
    .option('--out <file>', 'write the chain here instead of standard output')
    .addOption(outputOption(['pem', 'json', 'yaml']).default('pem'))
    .action(function (this: Command, opts: { cluster: string; csr: string; spiffeId: string; ttl?: string; out?: string; output: string }) {
      const format = dataFormat(opts.output, ['pem', 'json', 'yaml']);
      const authority = TrustAuthority.open(stateDir(this));
      const result = authority.signWorkload({ cluster: opts.cluster, csr: readInput(opts.csr, '--csr'), spiffeId: opts.spiffeId, ...(opts.ttl ? { ttl: opts.ttl } : {}) });
      for (const san of result.ignoredSans) process.stderr.write(`meshfed: ignored SAN requested by the CSR: ${san}\n`);
      const pem = result.certChain.join('');
      if (format === 'pem') {
        emit(pem, opts.out);
        return;
      }
      if (opts.out) writeFileAtomic(opts.out, pem, 0o644);
      print(format, { spiffeId: result.spiffeId, notAfter: result.notAfter.toISOString(), certChain: result.certChain, ignoredSans: result.ignoredSans }, () => pem);
    });

  ca.command('bundle')
    .description('the trust bundle: every root workloads must trust')
    .addOption(new Option('--format <format>', 'pem, or spiffe (the SPIFFE trust bundle JWKS)').choices(['pem', 'spiffe']).default('pem'))
    .option('--refresh-hint <duration>', 'spiffe_refresh_hint for --format spiffe', '5m')
    .action(function (this: Command, opts: { format: 'pem' | 'spiffe'; refreshHint: string }) {
      const authority = TrustAuthority.open(stateDir(this));
      if (opts.format === 'pem') process.stdout.write(authority.bundlePem());
      else process.stdout.write(JSON.stringify(authority.bundleJwks(Math.round(parseDuration(opts.refreshHint) / 1000)), null, 2) + '\n');
    });

  ca.command('renew')
    .description('reissue every intermediate past its renewal point (run it from cron, or let "meshfed serve" do it)')
    .addOption(outputOption())
    .action(function (this: Command, opts: { output: string }) {
      const format = dataFormat(opts.output);
      const result = TrustAuthority.open(stateDir(this)).renewDue();
      print(format, result, () =>
        [
          result.renewed.length ? `renewed: ${result.renewed.join(', ')}` : 'no intermediate is due for renewal',
          ...(result.needsOfflineRoot.length ? [`due, but the root is offline: ${result.needsOfflineRoot.join(', ')} (use ca csr / sign-intermediate / import-intermediate)`] : []),
          '',
        ].join('\n'),
      );
    });

  ca.command('token')
    .description('issue a bearer token a workload can present to the CA service (prints the token: treat it as a secret)')
    .requiredOption('--cluster <name>', 'the cluster the workload runs in')
    .requiredOption('--namespace <ns>', 'the workload namespace')
    .requiredOption('--service-account <sa>', 'the workload service account')
    .option('--ttl <duration>', 'token lifetime', '1h')
    .action(function (this: Command, opts: { cluster: string; namespace: string; serviceAccount: string; ttl: string }) {
      const authority = TrustAuthority.open(stateDir(this));
      if (!authority.intermediateCertificate(opts.cluster)) throw new UsageError(`cluster ${opts.cluster} has no intermediate`);
      process.stdout.write(issueToken(authority.tokenSecret(), { cluster: opts.cluster, namespace: opts.namespace, serviceAccount: opts.serviceAccount }, parseDuration(opts.ttl)) + '\n');
    });

  const rotate = ca.command('rotate').description('rotate the root without downtime: add the new root, reissue intermediates, remove the old root');
  withServerOptions(rotate
    .command('start'))
    .description('step 1: create (or import) the new root and add it to every bundle')
    .addOption(keyTypeOption())
    .option('--root-ttl <duration>', 'new root lifetime')
    .option('--import-root <file>', 'use an existing root certificate as the new root')
    .option('--import-key <file>', "the new root's key; without it the new root is offline")
    .addOption(outputOption())
    .action(async function (this: Command, opts: { keyType?: KeyType; rootTtl?: string; importRoot?: string; importKey?: string; output: string; server?: string }) {
      const format = dataFormat(opts.output);
      if (opts.server !== undefined) {
        if (opts.keyType ?? opts.rootTtl ?? opts.importRoot ?? opts.importKey) throw new UsageError('with --server the manager makes the new root by its trust policy: --key-type, --root-ttl, --import-root and --import-key act on a state dir only');
        const status = await rotationThroughApi(this, 'start');
        print(format, status, () => rotationText(status));
        return;
      }
      const importRoot = rootInput(opts);
      const status = TrustAuthority.open(stateDir(this)).startRotation({
        ...(opts.keyType ? { keyType: opts.keyType } : {}),
        ...(opts.rootTtl ? { rootTtl: opts.rootTtl } : {}),
        ...(importRoot ? { importRoot } : {}),
      });
      print(format, status, () => rotationText(status));
    });
  for (const [name, description] of [
    ['status', 'where the rotation stands, and which clusters it waits for'],
    ['advance', 'move to the next step; refused while a cluster still lacks the current one'],
    ['abort', 'abandon the rotation and keep the old root'],
  ] as const) {
    withServerOptions(rotate.command(name))
      .description(description)
      .addOption(outputOption())
      .action(async function (this: Command, opts: { output: string; server?: string }) {
        const format = dataFormat(opts.output);
        if (opts.server !== undefined) {
          const status = await rotationThroughApi(this, name);
          print(format, status, () => rotationText(status));
          return;
        }
        const authority = TrustAuthority.open(stateDir(this));
        const status = name === 'status' ? authority.rotationStatus() : name === 'advance' ? authority.advanceRotation() : authority.abortRotation();
        print(format, status, () => rotationText(status));
      });
  }
  return ca;
}
