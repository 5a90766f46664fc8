/**
 * The DNS server's rate (issue 6): queries per second answered by meshfed's DNS server (src/dns/server.ts, run in
 * this process as `serve` runs it) next to NSD (Debian's `nsd`) serving the same names, on the same machine, in the
 * same run.
 *
 * Names: NAMES hostnames `svc-N.global`, each with one named port (SRV `_http._tcp.svc-N.global`), VIPs from
 * meshfed's allocator (a temp state dir). NSD gets them as a zone file generated in a temp dir: the same A, AAAA and
 * SRV records, the same SOA and TTLs, plus the NS record NSD insists on; its config: 127.0.0.1 on a free port,
 * `server-count: 1`, `minimal-responses: yes`, `rrl-ratelimit: 0` (Debian's NSD rate-limits responses by default;
 * that would measure the limit), no IPv6, no database, no remote control; started as a child process (`nsd -d`),
 * stopped at the end.
 *
 * Like for like: each server answers with one thread on one UDP socket. NSD's `server-count: 1` is one process
 * that answers (besides it NSD's main process and xfrd, idle here; their CPU is counted all the same); meshfed is
 * one Node event loop, this process (Node 20's dgram has no SO_REUSEPORT, and cluster workers sharing one socket
 * would have to be matched by a higher server-count). The difference that stays: NSD reads and writes up to a
 * batch of datagrams per system call (recvmmsg, sendmmsg), Node one per call.
 *
 * Queries: QUERY_COUNT messages in a seeded random order, the same file for both: 70% A, 15% AAAA, 10% SRV, 5%
 * unknown names (NXDOMAIN with the SOA); no EDNS, names in lower case, over UDP. The answers differ a little, to
 * NSD's advantage: meshfed answers SRV with the target's A and AAAA as additionals, NSD (minimal-responses) without
 * them (about 170 bytes against 75), and NSD compresses names (an A answer: about 60 bytes against 50).
 *
 *   load     dnsperf (`dnsperf -s 127.0.0.1 -p PORT -d FILE -l ROUND_SECONDS -q IN_FLIGHT -t 2`: one client socket,
 *            a sending and a receiving thread) when installed, otherwise the bundled loop
 *            (test/bench/dns-load.ts, a forked process: IN_FLIGHT queries in flight, at most MAX_QUERIES or
 *            ROUND_SECONDS per round, a query unanswered after 2 s counted lost).
 *            MESHFED_DNS_BENCH_LOAD=builtin forces the bundled loop.
 *   rate     answered queries per second of a round, as the load generator counts them; median over ROUNDS
 *            rounds after one warm-up round each; meshfed and NSD interleaved, their order swapped each round.
 *            The ratio judged is meshfed's median over NSD's; the ratios of the rounds (each meshfed round over
 *            the NSD round next to it, so under the same load from other jobs) are printed beside it.
 *   loss     queries sent and never answered (timed out), summed over the measured rounds.
 *   cpu      the server's CPU time (user+system) per 1,000 answers: process.cpuUsage() of this process for
 *            meshfed (which does nothing else during a round), /proc/PID/stat of each process in NSD's group (it forks) for NSD.
 *   ceiling  meshfed's answer path alone, in process, no sockets: Responder.respond over the same queries, and
 *            dns-packet's decode + encode of the same queries (the round trip the hot path avoids), for scale.
 *
 * The load generator and the servers share 2 cores here: a round is bounded by whichever saturates first, and
 * the CPU per 1,000 answers says what each server itself costs. Target: meshfed >= 60% of NSD's rate with no loss.
 * Without NSD the bench says so (and how to install it) and measures meshfed alone; it installs nothing. Every
 * wait is bounded; the numbers are printed, never judged by a failure.
 */
import { execFile, fork, spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { accessSync, constants, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';
import { decode, encode, type Packet } from 'dns-packet';
import { DnsStats } from '../../src/dns/metrics.js';
import { Responder } from '../../src/dns/responder.js';
import { startDnsServer, type DnsServer } from '../../src/dns/server.js';
import { StaticZoneSource, type DnsName } from '../../src/dns/source.js';
import { VipAllocator, type Vips } from '../../src/dns/vip-allocator.js';
import { buildZoneIndex } from '../../src/dns/zone.js';
import type { LoadJob, LoadResult } from './dns-load.js';
import { Prng } from '../prng.js';
import { median } from './measure.js';

const NAMES = 1000;
const QUERY_COUNT = 10_000;
const ROUNDS = 5;
const ROUND_SECONDS = 5;
const IN_FLIGHT = 64;
const MAX_QUERIES = 2_000_000;
const TIMEOUT_MS = 2000;
const TARGET_RATIO = 0.6;
const CEILING_MS = 1000;
/** every wait below is bounded */
const WAIT_LIMIT_MS = 60_000;
const TTL = 30;

interface Target {
  name: 'meshfed' | 'NSD';
  port: number;
  cpuSeconds: () => number;
}

interface Round {
  qps: number;
  lost: number;
  sent: number;
  cpuPerThousand: number;
}

const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');
function which(command: string, extraDirs: string[] = []): string | undefined {
  for (const dir of [...(process.env.PATH ?? '').split(delimiter), ...extraDirs]) {
    try {
      accessSync(join(dir, command), constants.X_OK);
      return join(dir, command);
    } catch {
      // not here
    }
  }
  return undefined;
}

function makeQueries(): { name: string; type: 'A' | 'AAAA' | 'SRV' }[] {
  const prng = new Prng(6);
  const random = (): number => prng.next();
  return Array.from({ length: QUERY_COUNT }, () => {
    const n = Math.floor(random() * NAMES);
    const kind = random();
    if (kind < 0.7) return { name: `svc-${n}.global`, type: 'A' };
    if (kind < 0.85) return { name: `svc-${n}.global`, type: 'AAAA' };
    if (kind < 0.95) return { name: `_http._tcp.svc-${n}.global`, type: 'SRV' };
    return { name: `nope-${n}.global`, type: 'A' };
  });
}

async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  await new Promise((done) => server.close(done));
  return port;
}

function udpAsk(port: number, message: Buffer, timeoutMs: number): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const socket = createSocket('udp4');
    const timer = setTimeout(() => {
      socket.close();
      resolve(undefined);
    }, timeoutMs);
    socket.on('message', (answer) => {
      clearTimeout(timer);
      socket.close();
      resolve(answer);
    });
    socket.send(message, port, '127.0.0.1');
  });
}

/** CPU seconds (utime + stime, clock ticks of 1/100 s) of a process group: NSD forks its server and xfrd */
function groupCpuSeconds(pgid: number): number {
  let ticks = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const fields = readFileSync(`/proc/${entry}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
      if (Number(fields[2]) === pgid) ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // gone meanwhile
    }
  }
  return ticks / 100;
}

async function startNsd(nsd: string, dir: string, names: readonly DnsName[], vips: ReadonlyMap<string, Vips>): Promise<{ child: ChildProcess; port: number }> {
  const port = await freePort();
  const records = names.flatMap((entry) => {
    const v = vips.get(entry.hostname);
    const label = entry.hostname.replace(/\.global$/, '');
    return v ? [`${label} IN A ${v.ipv4}`, `${label} IN AAAA ${v.ipv6}`, `_http._tcp.${label} IN SRV 0 0 ${entry.ports[0]?.number ?? 0} ${entry.hostname}.`] : [];
  });
  writeFileSync(
    join(dir, 'global.zone'),
    [`$ORIGIN global.`, `$TTL ${TTL}`, `@ IN SOA dns.meshfed.invalid. hostmaster.meshfed.invalid. 1 3600 600 86400 ${TTL}`, `@ IN NS dns.meshfed.invalid.`, ...records, ''].join('\n'),
  );
  writeFileSync(
    join(dir, 'nsd.conf'),
    [
      'server:',
      '  ip-address: 127.0.0.1',
      `  port: ${port}`,
      '  server-count: 1',
      '  username: ""',
      '  chroot: ""',
      `  zonesdir: "${dir}"`,
      `  zonelistfile: "${dir}/zone.list"`,
      '  database: ""',
      `  pidfile: "${dir}/nsd.pid"`,
      `  xfrdfile: "${dir}/xfrd.state"`,
      `  xfrdir: "${dir}"`,
      `  logfile: "${dir}/nsd.log"`,
      '  verbosity: 0',
      '  do-ip6: no',
      '  hide-version: yes',
      '  minimal-responses: yes',
      '  rrl-ratelimit: 0',
      'remote-control:',
      '  control-enable: no',
      'zone:',
      '  name: "global"',
      `  zonefile: "${dir}/global.zone"`,
      '',
    ].join('\n'),
  );
  // a process group of its own, to add up the CPU of the processes NSD forks
  const child = spawn(nsd, ['-d', '-c', join(dir, 'nsd.conf')], { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const deadline = Date.now() + WAIT_LIMIT_MS;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`nsd exited with ${child.exitCode}: ${stderr}`);
    const answer = await udpAsk(port, encode({ type: 'query', id: 1, questions: [{ name: 'svc-0.global', type: 'A' }] }), 200);
    if (answer && decode(answer).answers?.length === 1) return { child, port };
    if (Date.now() > deadline) {
      child.kill();
      throw new Error(`nsd did not answer within ${WAIT_LIMIT_MS} ms: ${stderr}`);
    }
  }
}

async function dnsperfRound(dnsperf: string, file: string, port: number): Promise<{ qps: number; lost: number; sent: number; completed: number }> {
  const { stdout } = await promisify(execFile)(dnsperf, ['-s', '127.0.0.1', '-p', String(port), '-d', file, '-l', String(ROUND_SECONDS), '-q', String(IN_FLIGHT), '-t', String(TIMEOUT_MS / 1000)], {
    encoding: 'utf8',
    timeout: WAIT_LIMIT_MS,
  });
  const number = (label: string): number => Number(new RegExp(`${label}:\\s+([\\d.]+)`).exec(stdout)?.[1] ?? NaN);
  const result = { sent: number('Queries sent'), completed: number('Queries completed'), lost: number('Queries lost'), qps: number('Queries per second') };
  if (Object.values(result).some(Number.isNaN)) throw new Error(`cannot read dnsperf's output:\n${stdout}`);
  return result;
}

function builtinRound(queries: string[], port: number): Promise<LoadResult> {
  const child = fork(new URL('./dns-load.ts', import.meta.url), { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const job: LoadJob = { host: '127.0.0.1', port, queries, concurrency: IN_FLIGHT, durationMs: ROUND_SECONDS * 1000, maxQueries: MAX_QUERIES, timeoutMs: TIMEOUT_MS };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill();
      reject(new Error(`the load process did not report within ${WAIT_LIMIT_MS} ms`));
    }, WAIT_LIMIT_MS);
    child.once('message', (result: LoadResult) => {
      clearTimeout(timer);
      child.kill();
      resolve(result);
    });
    child.send(job);
  });
}

function ceiling(index: ReturnType<typeof buildZoneIndex>, messages: Buffer[]): { respond: number; dnsPacket: number } {
  const responder = new Responder(index, { stats: new DnsStats() });
  const rate = (work: (message: Buffer) => void): number => {
    let n = 0;
    const t0 = performance.now();
    while (performance.now() - t0 < CEILING_MS) for (let i = 0; i < 1000; i++, n++) work(messages[n % messages.length] ?? Buffer.alloc(0));
    return n / ((performance.now() - t0) / 1000);
  };
  rate((message) => responder.respond(message, false)); // warm
  const respond = rate((message) => responder.respond(message, false));
  const dnsPacket = rate((message) => {
    const packet: Packet = decode(message);
    encode({ ...packet, type: 'response' });
  });
  return { respond, dnsPacket };
}

export async function run(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'meshfed-dns-bench-'));
  const names: DnsName[] = Array.from({ length: NAMES }, (_, i) => ({ hostname: `svc-${i}.global`, ports: [{ name: 'http', number: 8000 + (i % 1000), protocol: 'HTTP' }] }));
  const allocator = new VipAllocator({ stateDir: join(dir, 'state') });
  const { assigned } = allocator.sync(names.map((name) => name.hostname));
  let server: DnsServer | undefined;
  let nsd: { child: ChildProcess; port: number } | undefined;
  try {
    server = await startDnsServer({ source: new StaticZoneSource(names), allocator, port: 0, ttl: TTL });
    const meshfedPort = server.port;
    const queries = makeQueries();
    const messages = queries.map((q, i) => encode({ type: 'query', id: i & 0xffff, questions: [{ name: q.name, type: q.type, class: 'IN' }] }));
    const queryFile = join(dir, 'queries.txt');
    writeFileSync(queryFile, queries.map((q) => `${q.name} ${q.type}\n`).join(''));

    const nsdPath = which('nsd', ['/usr/sbin', '/usr/local/sbin']);
    if (nsdPath) nsd = await startNsd(nsdPath, dir, names, assigned);
    else console.log('NSD is not installed (Debian: apt-get install nsd): measuring meshfed alone, without a reference');
    const dnsperf = process.env.MESHFED_DNS_BENCH_LOAD === 'builtin' ? undefined : which('dnsperf');
    console.log(`${NAMES} names (A, AAAA, SRV each), ${fmt(QUERY_COUNT)} queries (70% A, 15% AAAA, 10% SRV, 5% NXDOMAIN), UDP, no EDNS`);
    console.log(`servers: meshfed, one Node event loop (this process), one UDP socket${nsd ? '; NSD, server-count 1 (one answering process), one UDP socket, minimal-responses (SRV without additionals)' : ''}`);
    console.log(
      `load: ${dnsperf ? `dnsperf (${dnsperf}), ${IN_FLIGHT} in flight` : `the bundled UDP loop (test/bench/dns-load.ts, forked), ${IN_FLIGHT} in flight${process.env.MESHFED_DNS_BENCH_LOAD === 'builtin' ? '' : ' (dnsperf is not installed: apt-get install dnsperf)'}`}; ${ROUNDS} rounds of ${ROUND_SECONDS} s after a warm-up, interleaved`,
    );

    const targets: Target[] = [
      {
        name: 'meshfed',
        port: meshfedPort,
        cpuSeconds: () => {
          const usage = process.cpuUsage();
          return (usage.user + usage.system) / 1e6;
        },
      },
    ];
    const nsdPid = nsd?.child.pid;
    if (nsd && nsdPid !== undefined) targets.push({ name: 'NSD', port: nsd.port, cpuSeconds: () => groupCpuSeconds(nsdPid) });
    const base64 = messages.map((message) => message.toString('base64'));
    const rounds = new Map<Target['name'], Round[]>(targets.map((target) => [target.name, []]));
    for (let round = 0; round <= ROUNDS; round++) {
      const order = round % 2 === 0 ? targets : [...targets].reverse();
      for (const target of order) {
        const cpu0 = target.cpuSeconds();
        const result = dnsperf ? await dnsperfRound(dnsperf, queryFile, target.port) : await builtinRound(base64, target.port);
        const cpu = target.cpuSeconds() - cpu0;
        const completed = result.completed;
        const qps = 'qps' in result ? result.qps : result.completed / result.seconds;
        if (round > 0) rounds.get(target.name)?.push({ qps, lost: result.lost, sent: result.sent, cpuPerThousand: (cpu * 1000 * 1000) / Math.max(completed, 1) });
      }
    }

    const index = buildZoneIndex(names, assigned, { ttl: TTL, negativeTtl: TTL, extraZones: [], soa: {}, serial: 1 });
    const ceil = ceiling(index, messages);

    console.log('');
    for (const target of targets) {
      const measured = rounds.get(target.name) ?? [];
      const lost = measured.reduce((sum, r) => sum + r.lost, 0);
      const sent = measured.reduce((sum, r) => sum + r.sent, 0);
      console.log(
        `${target.name.padEnd(8)} ${fmt(median(measured.map((r) => r.qps)))} queries/s (rounds ${measured.map((r) => fmt(r.qps)).join(' / ')}), lost ${fmt(lost)} of ${fmt(sent)}, server CPU ${median(measured.map((r) => r.cpuPerThousand)).toFixed(1)} ms per 1,000 answers`,
      );
    }
    const mine = rounds.get('meshfed') ?? [];
    const theirs = rounds.get('NSD');
    const meshfedLost = mine.reduce((sum, r) => sum + r.lost, 0);
    if (theirs) {
      const ratio = median(mine.map((r) => r.qps)) / median(theirs.map((r) => r.qps));
      const paired = mine.map((r, i) => r.qps / (theirs[i]?.qps ?? NaN));
      console.log(`meshfed = ${(ratio * 100).toFixed(1)}% of NSD's rate (target >= ${TARGET_RATIO * 100}% with no loss: ${ratio >= TARGET_RATIO && meshfedLost === 0 ? 'met' : 'NOT met'})`);
      console.log(`round by round: ${paired.map((r) => `${(r * 100).toFixed(0)}%`).join(' / ')} (median ${(median(paired) * 100).toFixed(1)}%)`);
      const cpuRatio = median(mine.map((r) => r.cpuPerThousand)) / median(theirs.map((r) => r.cpuPerThousand));
      console.log(`meshfed's CPU per answer = ${cpuRatio.toFixed(2)} × NSD's`);
    } else console.log(`no NSD reference: target (>= ${TARGET_RATIO * 100}% of NSD) not judged; meshfed lost ${fmt(meshfedLost)}`);
    console.log(`ceiling, in process without sockets: Responder.respond ${fmt(ceil.respond)} answers/s; dns-packet decode + encode of the same queries ${fmt(ceil.dnsPacket)}/s (respond does ${(ceil.respond / ceil.dnsPacket).toFixed(1)}× as many)`);
  } finally {
    await server?.close();
    if (nsd) {
      nsd.child.kill('SIGTERM');
      await Promise.race([once(nsd.child, 'exit'), new Promise((done) => setTimeout(done, 5000))]);
      nsd.child.kill('SIGKILL');
    }
    rmSync(dir, { recursive: true, force: true });
  }
}
