/**
 * The dashboard's views. Each has a title, a body rebuilt from the API at every refresh, and optionally controls
 * built once when the view is opened (so a refresh never resets what the user is choosing).
 */
import { get } from './api.js';
import { badge, day, facts, h, relative, seconds, shortId, stateBadge, table } from './dom.js';

/** @typedef {import('./types').Cluster} Cluster */
/** @typedef {import('./types').VirtualDestination} VirtualDestination */
/** @typedef {import('./types').DrillRun} DrillRun */
/** @typedef {Record<string, string>} Params */
/**
 * @typedef {object} View
 * @property {string} title
 * @property {(params: Params) => Promise<Node>} body
 * @property {(params: Params) => Promise<Node>} [controls]
 */

/** @returns {Promise<Cluster[]>} */
const clusters = async () => /** @type {{ clusters: Cluster[] }} */ (await get('/clusters')).clusters;

/** @returns {Promise<VirtualDestination[]>} */
const virtualDestinations = async () => /** @type {{ virtualDestinations: VirtualDestination[] }} */ (await get('/virtualdestinations')).virtualDestinations;

/** @param {{ region: string, zone: string }} c */
const locality = (c) => [c.region, c.zone].filter((part) => part !== '').join('/') || '—';

/** @type {View} */
const clustersView = {
  title: 'Clusters',
  async body() {
    const list = await clusters();
    /** @type {Map<string, number>} */
    const states = new Map();
    for (const c of list) states.set(c.state, (states.get(c.state) ?? 0) + 1);
    const networks = new Set(list.map((c) => c.network));
    return h(
      'section',
      {},
      h('p', { class: 'summary' }, `${String(list.length)} clusters in ${String(networks.size)} networks: `, [...states].map(([state, n]) => [stateBadge(state), ` ${String(n)} `])),
      table(
        ['Cluster', 'State', 'Network', 'Locality', 'Source', 'Gateways', 'Last sync', 'Services', 'Endpoints', 'Events/s'],
        list.map((c) => ({
          attributes: { 'data-cluster': c.name },
          cells: [
            h('strong', {}, c.name),
            [stateBadge(c.state), c.reason ? h('div', { class: 'reason' }, c.reason) : null, h('div', { class: 'since' }, `since ${relative(c.since)}`)],
            c.network,
            locality(c),
            `${c.source} (${c.origin === 'file' ? 'federation file' : 'registered'})`,
            c.gateways.length ? c.gateways.map((g) => h('div', {}, h('code', {}, `${g.address}:${String(g.port)}`))) : '—',
            relative(c.lastSync),
            c.services,
            c.endpoints,
            c.eventsPerSecond.toFixed(1),
          ],
        })),
        'Clusters',
      ),
    );
  },
};

/** @param {import('./types').FailoverOrderEntry} entry */
const orderEntry = (entry) => (entry.cluster !== undefined ? entry.cluster : [entry.region, entry.zone].filter((p) => p !== undefined).join('/'));

/**
 * The failover tiers in words: by locality (and the region mappings), or the explicit order.
 * @param {VirtualDestination['spec']['failover']} failover
 */
function tiers(failover) {
  const lines = [];
  if (failover.policy === 'priority') {
    lines.push(h('div', {}, 'priority: ', (failover.order ?? []).map(orderEntry).join(' → '), ' → the rest'));
  } else {
    lines.push(h('div', {}, 'locality: same zone → same region → ', failover.regionMappings?.length ? 'mapped regions → ' : '', 'other regions'));
    for (const m of failover.regionMappings ?? []) lines.push(h('div', { class: 'detail' }, `from ${m.from}: ${m.to.join(' → ')}`));
  }
  if (failover.weights?.length) lines.push(h('div', { class: 'detail' }, `weights: ${failover.weights.map((w) => `${w.cluster} ${String(w.weight)}`).join(', ')}`));
  if (failover.minHealthyPercent !== undefined) lines.push(h('div', { class: 'detail' }, `spills below ${String(failover.minHealthyPercent)}% healthy`));
  return lines;
}

/** @type {View} */
const virtualDestinationsView = {
  title: 'Virtual destinations',
  async body() {
    const list = await virtualDestinations();
    if (list.length === 0) return h('p', {}, 'No virtual destination yet: add one to the federation file, or "meshfed vd apply -f FILE".');
    return table(
      ['Name', 'Hostname', 'VIPs', 'Failover tiers', 'Healthy endpoints', 'Per cluster', 'Source'],
      list.map((vd) => ({
        attributes: { 'data-vd': vd.metadata.name },
        cells: [
          h('strong', {}, vd.metadata.name),
          [h('code', {}, vd.spec.hostname), h('div', { class: 'detail' }, vd.spec.ports.map((p) => `${String(p.number)}/${p.protocol}`).join(', '))],
          vd.status.vips ? [h('div', {}, h('code', {}, vd.status.vips.ipv4)), h('div', {}, h('code', {}, vd.status.vips.ipv6))] : '—',
          tiers(vd.spec.failover),
          h('span', { class: 'count', 'data-healthy': vd.status.healthy, 'data-endpoints': vd.status.endpoints }, `${String(vd.status.healthy)} of ${String(vd.status.endpoints)}`),
          vd.status.clusters.length
            ? h(
                'ul',
                { class: 'plain' },
                vd.status.clusters.map((c) =>
                  h('li', { 'data-cluster': c.cluster, class: c.healthy === 0 ? 'down' : undefined }, h('strong', {}, c.cluster), ` ${String(c.healthy)}/${String(c.endpoints)} healthy`),
                ),
              )
            : (vd.status.message ?? 'no backends'),
          vd.status.source === 'file' ? 'federation file' : 'API',
        ],
      })),
      'Virtual destinations',
    );
  },
};

/** @type {View} */
const explainView = {
  title: 'What does a cluster see?',
  async controls(params) {
    const [cs, vds] = await Promise.all([clusters(), virtualDestinations()]);
    const from = h('select', { name: 'from', id: 'explain-from' }, cs.map((c) => h('option', { value: c.name, selected: c.name === params.from }, c.name)));
    const hosts = h(
      'select',
      { name: 'host', id: 'explain-host' },
      vds.map((vd) => vd.spec.ports.map((p) => `${vd.spec.hostname}:${String(p.number)}`)).flat().map((host) => h('option', { value: host, selected: host === params.host }, host)),
    );
    const form = h(
      'form',
      { class: 'controls', id: 'explain-form' },
      h('label', { for: 'explain-from' }, 'A client in'),
      from,
      h('label', { for: 'explain-host' }, 'calling'),
      hosts,
      h('button', { type: 'submit' }, 'Explain'),
    );
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      location.hash = `#/explain?${new URLSearchParams({ from: from.value, host: hosts.value }).toString()}`;
    });
    return form;
  },
  async body(params) {
    if (!params.from || !params.host) return h('p', {}, 'Choose a cluster and a virtual destination: the answer is what meshfed\'s xDS server sends a proxy standing there, and why.');
    const e = /** @type {import('./types').Explanation} */ (await get(`/explain?${new URLSearchParams({ from: params.from, host: params.host }).toString()}`));
    return h(
      'section',
      { id: 'explanation' },
      facts([
        ['client', `${e.from.cluster} (network ${e.from.network}, ${e.from.locality || 'no locality'})`],
        ['destination', [h('code', {}, `${e.host}:${String(e.port)}`), ` ${e.kind === 'virtual-destination' ? 'virtual destination' : 'service'} ${e.name}`]],
        ['xDS cluster', h('code', {}, e.cluster)],
      ]),
      table(
        ['Priority', 'Locality', 'Why there', 'Endpoint', 'Weight', 'Health', 'Reached'],
        e.groups.flatMap((g) =>
          g.endpoints.map((ep) => ({
            attributes: { 'data-priority': String(g.priority) },
            cells: [String(g.priority), g.locality, g.reason, h('code', {}, `${ep.address}:${String(ep.port)}`), ep.weight, badge(ep.health, ep.health === 'HEALTHY' ? 'good' : 'bad'), ep.via],
          })),
        ),
        'Endpoints by priority',
      ),
      e.dropped.length ? h('p', { class: 'detail' }, `Left out: ${e.dropped.map((d) => `${d.cluster} ${d.address}:${String(d.port)} (${d.reason})`).join('; ')}`) : null,
    );
  },
};

/** The traffic sections of a drill's HTML report (chart, legend, totals), drawn by the same code as the report file. */
/** @type {Map<string, Node[]>} */
const charts = new Map();

/**
 * @param {string} id
 * @returns {Promise<Node[]>}
 */
async function drillCharts(id) {
  const cached = charts.get(id);
  if (cached) return cached;
  const html = /** @type {string} */ (await get(`/drills/${encodeURIComponent(id)}/traffic.html`, 'text'));
  const report = new DOMParser().parseFromString(html, 'text/html');
  const sections = [...report.querySelectorAll('section.stream')].map((section) => document.importNode(section, true));
  charts.set(id, sections);
  return sections;
}

/** @param {DrillRun} run */
function drillState(run) {
  return stateBadge(run.state);
}

/** @param {DrillRun} run */
async function drillDetail(run) {
  const parts = [
    h('h2', {}, `Drill ${run.name}`),
    facts([
      ['id', h('code', {}, run.id)],
      ['state', drillState(run)],
      ['started', `${run.startedAt} (${relative(run.startedAt)})`],
      ...(run.result ? /** @type {[string, string][]} */ ([['duration', `${run.result.durationSeconds.toFixed(1)} s`], ['clusters', run.result.clusters.join(', ')]]) : []),
      ...(run.error ? /** @type {[string, string][]} */ ([['error', run.error]]) : []),
    ]),
  ];
  if (run.progress) {
    const p = run.progress;
    parts.push(
      h('p', {}, `${p.t.toFixed(0)} s of ${String(p.durationSeconds)} s`, p.step ? `: ${p.step}` : ''),
      table(
        ['Stream', 'Served in the last second', 'Failed'],
        p.streams.map((s) => ({
          cells: [s.name, Object.entries(s.second.byCluster).map(([c, n]) => `${c} ${String(n)}`).join(' · ') || 'none', Object.values(s.second.errors).reduce((a, b) => a + b, 0)],
        })),
        'Live traffic',
      ),
    );
  }
  const result = run.result;
  if (result) {
    parts.push(
      h('h3', {}, 'Expectations'),
      table(
        ['Result', 'Expectation', 'Measured'],
        result.expectations.map((x) => ({ cells: [badge(x.passed ? 'passed' : 'failed', x.passed ? 'good' : 'bad'), x.name, h('span', { class: 'pre' }, x.detail)] })),
        'Expectations',
      ),
      h('h3', {}, 'Shifts'),
      table(
        ['Stream', 'Step', 'Time to detect', 'Time to shift', 'Failed requests', 'Time to fail back'],
        result.shifts.map((s) => ({ cells: [s.stream, s.fault, seconds(s.timeToDetectMs), seconds(s.timeToShiftMs), s.failedDuringShift, seconds(s.timeToFailBackMs)] })),
        'Shifts',
      ),
      h('h3', {}, 'Traffic'),
      h('div', { class: 'charts' }, await drillCharts(run.id)),
    );
  }
  return h('section', { class: 'drill', 'data-drill': run.id }, parts);
}

/** @type {View} */
const drillsView = {
  title: 'Failover drills',
  async body(params) {
    const runs = /** @type {{ drills: DrillRun[] }} */ (await get('/drills')).drills;
    const list = runs.length
      ? table(
          ['Drill', 'State', 'Started', 'Id'],
          [...runs].reverse().map((run) => ({
            attributes: { 'data-drill': run.id, class: run.id === params.id ? 'selected' : '' },
            cells: [h('a', { href: `#/drills/${encodeURIComponent(run.id)}` }, run.name), drillState(run), relative(run.startedAt), h('code', {}, run.id)],
          })),
          'Drills',
        )
      : h('p', {}, 'No drill has run in this manager yet: "meshfed drill run scenarios/region-outage.yaml".');
    const id = params.id;
    if (id === undefined) return list;
    const run = /** @type {DrillRun} */ (await get(`/drills/${encodeURIComponent(id)}`));
    return h('div', {}, list, await drillDetail(run));
  },
};

/** @type {View} */
const trustView = {
  title: 'Trust domain',
  async body() {
    const t = /** @type {import('./types').Trust} */ (await get('/trust'));
    return h(
      'section',
      {},
      facts([
        ['trust domain', h('strong', {}, t.trustDomain)],
        ['bundle sequence', String(t.bundleSequence)],
        ['active root', shortId(t.activeRootId)],
      ]),
      h('h3', {}, 'Roots'),
      table(
        ['Root', 'Subject', 'Not before', 'Not after', 'Expires', 'Signs intermediates', 'Key'],
        t.roots.map((r) => ({
          attributes: { 'data-root': r.id },
          cells: [shortId(r.id), r.subject, day(r.notBefore), day(r.notAfter), relative(r.notAfter), r.active ? badge('active', 'good') : 'no', r.offline ? 'offline' : 'in the state dir'],
        })),
        'Roots',
      ),
      h('h3', {}, 'Intermediates'),
      table(
        ['Cluster', 'Serial', 'Root', 'Not after', 'Expires', 'Renew after', 'Delivered'],
        t.intermediates.map((i) => ({
          attributes: { 'data-cluster': i.cluster },
          cells: [
            h('strong', {}, i.cluster),
            i.serial ? shortId(i.serial) : i.pendingCsr ? 'CSR pending' : '—',
            shortId(i.rootId),
            day(i.notAfter),
            relative(i.notAfter),
            day(i.renewAfter),
            i.delivered ? badge('yes', 'good') : badge('no', 'warn'),
          ],
        })),
        'Intermediates',
      ),
      h('h3', {}, 'Rotation'),
      facts([
        ['phase', h('span', { id: 'rotation-phase' }, t.rotation.phase)],
        ...(t.rotation.oldRootId ? /** @type {[string, Node | string][]} */ ([['old root', shortId(t.rotation.oldRootId)], ['new root', shortId(t.rotation.newRootId)]]) : []),
        ['next', t.rotation.next],
      ]),
      t.rotation.steps.length
        ? h(
            'ol',
            { class: 'steps' },
            t.rotation.steps.map((s) => h('li', {}, s.done ? badge('done', 'good') : badge('waiting', 'warn'), ` ${s.step}`, s.waitingFor.length ? ` — waiting for ${s.waitingFor.join(', ')}` : '')),
          )
        : null,
    );
  },
};

/** @type {Record<string, View>} */
export const views = {
  clusters: clustersView,
  virtualdestinations: virtualDestinationsView,
  explain: explainView,
  drills: drillsView,
  trust: trustView,
};
