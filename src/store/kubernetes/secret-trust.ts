/**
 * The trust domain in Kubernetes mode: the CA lives in one Secret (secret-trust-state.ts) that every replica
 * reads; every replica signs workload certificates with the intermediates it holds from there (the Secret is
 * the CA's state, as the state dir is in file mode, so the keys are where the CA service runs either way). Only
 * the leader changes the CA: intermediate renewal, rotation steps, delivery of each cluster's material. Each change
 * starts from a fresh read of the Secret and ends with one write guarded by that read's resourceVersion, so a
 * step is applied once: a deposed leader's write is refused (409) and its change dropped, and a new leader
 * continues from what the Secret says.
 */
import { ApiException, V1ObjectMeta, V1Secret, type CoreV1Api } from '@kubernetes/client-node';
import { SILENT_LOGGER, type Logger } from '../../logging.js';
import { parseTrustManifest, TrustAuthority, type ClusterMaterial } from '../../trust/authority.js';
import { SecretTrustStore } from './secret-trust-state.js';

/** A change asked of a replica that is not the leader; `leader` is who is, when known. */
export class NotLeaderError extends Error {
  constructor(readonly leader: string | undefined) {
    super(`this replica is not the leader; CA changes are made by the leader${leader ? ` (${leader})` : ' (none elected yet)'}`);
  }
}

export interface KubernetesTrustOptions {
  core: CoreV1Api;
  namespace: string;
  /** the Secret holding the CA */
  secretName: string;
  isLeader: () => boolean;
  leader: () => string | undefined;
  logger?: Logger;
  env?: NodeJS.ProcessEnv;
}

/** The name of the Secret that carries a cluster's CA material, in Istio's plug-in CA layout. */
export const cacertsSecretName = (cluster: string): string => `meshfed-cacerts-${cluster}`;

export class KubernetesTrust {
  readonly #store: SecretTrustStore;
  readonly #options: KubernetesTrustOptions;
  readonly #log: Logger;
  #authority: TrustAuthority | undefined;
  /** changes run one at a time */
  #queue: Promise<unknown> = Promise.resolve();

  constructor(options: KubernetesTrustOptions) {
    this.#store = new SecretTrustStore(options.core, options.namespace, options.secretName);
    this.#options = options;
    this.#log = options.logger ?? SILENT_LOGGER;
  }

  /** the CA, once the Secret holds one */
  get authority(): TrustAuthority | undefined {
    return this.#authority;
  }

  /** the Secret's resourceVersion as last seen */
  get resourceVersion(): string | undefined {
    return this.#store.latest?.resourceVersion;
  }

  /** Reads the Secret and picks up what another replica wrote; returns whether anything changed. */
  async refresh(): Promise<boolean> {
    const moved = await this.#store.load();
    if (!this.#store.latest) return false;
    if (!this.#authority) {
      this.#authority = TrustAuthority.openState(this.#store.open(parseTrustManifest), this.#options.env);
      return true;
    }
    return moved && this.#authority.reload();
  }

  /**
   * Leader only: makes sure the Secret holds a CA for `trustDomain` with the token secret and an intermediate for
   * every one of `clusters`.
   */
  async initialize(trustDomain: string, clusters: readonly string[]): Promise<void> {
    await this.#exclusive(async () => {
      this.#requireLeader();
      await this.refresh();
      if (!this.#authority) {
        TrustAuthority.initState((manifest) => this.#store.create(manifest), { trustDomain }, this.#options.env);
        await this.#write();
        this.#log.info({ trustDomain, secret: this.#options.secretName }, 'created the trust domain in its Secret');
      }
      const authority = this.#required();
      if (authority.trustDomain !== trustDomain) throw new Error(`Secret ${this.#options.secretName} holds trust domain ${authority.trustDomain}, not ${trustDomain}`);
      await this.#guarded(() => {
        authority.tokenSecret();
        for (const cluster of clusters) if (!authority.intermediateCertificate(cluster)) authority.issueIntermediate(cluster);
      });
    });
  }

  /**
   * Leader only: runs a change to the CA on the state just read from the Secret, and writes it with that read's
   * resourceVersion; when the write fails, the change is dropped (the replica reloads what the Secret holds).
   */
  change<T>(what: string, apply: (authority: TrustAuthority) => T): Promise<T> {
    return this.#exclusive(async () => {
      this.#requireLeader();
      await this.refresh();
      const result = await this.#guarded(() => apply(this.#required()));
      this.#log.info({ change: what, resourceVersion: this.resourceVersion }, 'CA change written to its Secret');
      return result;
    });
  }

  /**
   * Leader only, periodic: renews due intermediates, then delivers to every cluster that lacks its current
   * material (bundle or intermediate): the Secret meshfed-cacerts-CLUSTER is written first, then the delivery
   * is recorded in the CA's Secret, so a leader that dies in between only makes its successor deliver again.
   */
  async reconcile(): Promise<{ renewed: string[]; delivered: string[] }> {
    const renewed = (await this.change('renew due intermediates', (authority) => authority.renewDue())).renewed;
    const stale = this.#required()
      .intermediates()
      .filter((i) => i.serial !== undefined && !i.delivered)
      .map((i) => i.cluster);
    const delivered: string[] = [];
    for (const cluster of stale) {
      await this.#exclusive(async () => {
        this.#requireLeader();
        await this.refresh();
        await this.#guarded(async () => {
          await this.#writeMaterial(cluster, this.#required().deliver(cluster));
        });
        delivered.push(cluster);
      });
    }
    if (delivered.length) this.#log.info({ clusters: delivered }, 'delivered CA material to clusters');
    return { renewed, delivered };
  }

  #requireLeader(): void {
    if (!this.#options.isLeader()) throw new NotLeaderError(this.#options.leader());
  }

  #required(): TrustAuthority {
    if (!this.#authority) throw new Error(`Secret ${this.#options.namespace}/${this.#options.secretName} holds no CA yet`);
    return this.#authority;
  }

  /** Runs `apply` and writes what it committed; when either fails, nothing of it stays, here or in the Secret. */
  async #guarded<T>(apply: () => T | Promise<T>): Promise<T> {
    let result: T;
    try {
      result = await apply();
    } catch (error) {
      this.#store.discardPending();
      this.#revert();
      throw error;
    }
    await this.#write();
    return result;
  }

  /** Writes what the last commit left pending; on failure the change is dropped and the Secret's state reloaded. */
  async #write(): Promise<void> {
    if (!this.#store.hasPending()) return;
    if (!this.#options.isLeader()) {
      this.#store.discardPending();
      this.#revert();
      throw new NotLeaderError(this.#options.leader());
    }
    try {
      await this.#store.flush();
    } catch (error) {
      this.#revert();
      if (error instanceof ApiException && error.code === 409) throw new Error('the CA Secret was changed by another replica meanwhile; this change was not applied', { cause: error });
      throw error;
    }
    if (!this.#authority) this.#authority = TrustAuthority.openState(this.#store.open(parseTrustManifest), this.#options.env);
    else this.#authority.reload();
  }

  #revert(): void {
    if (!this.#store.latest) this.#authority = undefined;
    else this.#authority?.reload();
  }

  async #writeMaterial(cluster: string, material: ClusterMaterial): Promise<void> {
    const { core, namespace } = this.#options;
    const name = cacertsSecretName(cluster);
    const body = Object.assign(new V1Secret(), {
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'Opaque',
      metadata: Object.assign(new V1ObjectMeta(), { name, namespace, labels: { 'app.kubernetes.io/managed-by': 'meshfed', 'meshfed.io/cluster': cluster } }),
      data: Object.fromEntries(Object.entries(material).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
    });
    try {
      await core.replaceNamespacedSecret({ name, namespace, body });
    } catch (error) {
      if (!(error instanceof ApiException) || error.code !== 404) throw error;
      await core.createNamespacedSecret({ namespace, body });
    }
  }

  #exclusive<T>(run: () => Promise<T>): Promise<T> {
    const next = this.#queue.then(run, run);
    this.#queue = next.catch(() => undefined);
    return next;
  }
}
