// The east-west gateway's ClientHello reader: real hellos from Node and openssl, every way of arriving (byte by
// byte, fragmented over records), hostile and broken inputs, and a seeded fuzz run.
import { beforeAll, describe, expect, test } from 'vitest';
import { DEFAULT_MAX_HELLO_BYTES, readClientHello, type HelloRead } from '../../src/gateway/client-hello.js';
import {
  alpnExtension,
  ascii,
  clientHello,
  concatBytes,
  DEFAULT_SERVER_NAME,
  handshakeMessage,
  handshakeOf,
  helloBody,
  inRecords,
  serverNameExtension,
  SUPPORTED_VERSIONS_EXTENSION,
  toHex,
  u16,
  u24,
  u8,
  vec16,
  vec8,
  type Extension,
} from './hello-bytes.js';
import { Prng } from '../prng.js';
import { nodeClientHello, opensslClientHello } from './hello-capture.js';

const ISTIO_SNI = 'outbound_.9080_._.reviews.default.svc.cluster.local';

/** The SNI rules, restated independently of the module: DNS labels of [a-z0-9_-], no numeric last label. */
function isValidServerName(name: string): boolean {
  const labels = name.split('.');
  return name.length <= 253 && labels.every((label) => /^[a-z0-9_-]{1,63}$/.test(label)) && !/^[0-9]+$/.test(labels.at(-1) ?? '');
}

function expectRejected(result: HelloRead, reason: string, detail?: RegExp): void {
  expect(result).toMatchObject({ kind: 'rejected', reason });
  if (detail !== undefined && result.kind === 'rejected') expect(result.detail).toMatch(detail);
}

type RealHello = 'istio' | 'alpn' | 'noSni' | 'tls12' | 'tls13' | 'upperCase' | 'openssl';
const real: Record<RealHello, Uint8Array> = {
  istio: new Uint8Array(0),
  alpn: new Uint8Array(0),
  noSni: new Uint8Array(0),
  tls12: new Uint8Array(0),
  tls13: new Uint8Array(0),
  upperCase: new Uint8Array(0),
  openssl: new Uint8Array(0),
};

beforeAll(async () => {
  [real.istio, real.alpn, real.noSni, real.tls12, real.tls13, real.upperCase, real.openssl] = await Promise.all([
    nodeClientHello({ servername: ISTIO_SNI }),
    nodeClientHello({ servername: 'reviews.global', ALPNProtocols: ['h2'] }),
    nodeClientHello({}),
    nodeClientHello({ servername: 'reviews.global', maxVersion: 'TLSv1.2' }),
    nodeClientHello({ servername: 'reviews.global', minVersion: 'TLSv1.3' }),
    nodeClientHello({ servername: 'Reviews.Default.SVC.cluster.local.' }),
    opensslClientHello(['-servername', 'ratings.default.svc.cluster.local', '-alpn', 'h2,http/1.1']),
  ]);
});

describe('real ClientHellos', () => {
  test("Node's tls.connect with an Istio SNI", () => {
    expect(readClientHello(real.istio)).toEqual({ kind: 'hello', serverName: ISTIO_SNI, alpn: [], length: real.istio.length });
  });

  test("Node's tls.connect with ALPN h2", () => {
    expect(readClientHello(real.alpn)).toEqual({ kind: 'hello', serverName: 'reviews.global', alpn: ['h2'], length: real.alpn.length });
  });

  test('connecting to an IP sends no SNI', () => {
    expect(readClientHello(real.noSni)).toEqual({ kind: 'hello', serverName: undefined, alpn: [], length: real.noSni.length });
  });

  test('TLS 1.2 at most and TLS 1.3 only', () => {
    // A TLS 1.2-only hello has no supported_versions extension (43); a TLS 1.3 one has.
    expect(toHex(real.tls12)).not.toContain('002b0003020303');
    expect(toHex(real.tls13)).toContain('002b0003020304');
    for (const hello of [real.tls12, real.tls13]) {
      expect(readClientHello(hello)).toEqual({ kind: 'hello', serverName: 'reviews.global', alpn: [], length: hello.length });
    }
  });

  test('the name is lowercased and a trailing dot dropped', () => {
    expect(readClientHello(real.upperCase)).toMatchObject({ kind: 'hello', serverName: 'reviews.default.svc.cluster.local' });
  });

  test('openssl s_client -servername -alpn', () => {
    expect(readClientHello(real.openssl)).toEqual({
      kind: 'hello',
      serverName: 'ratings.default.svc.cluster.local',
      alpn: ['h2', 'http/1.1'],
      length: real.openssl.length,
    });
  });

  test('bytes after the ClientHello (early data, the next record) are not part of it', () => {
    const withMore = concatBytes(real.istio, Uint8Array.of(23, 3, 3, 0, 2, 0xaa, 0xbb));
    expect(readClientHello(withMore)).toEqual({ kind: 'hello', serverName: ISTIO_SNI, alpn: [], length: real.istio.length });
  });
});

describe('how the bytes arrive', () => {
  test('one byte at a time: incomplete until the last byte', () => {
    for (const hello of [real.istio, real.alpn, real.openssl]) {
      for (let end = 0; end < hello.length; end += 1) {
        const result = readClientHello(hello.subarray(0, end));
        if (result.kind !== 'incomplete') throw new Error(`prefix of ${end}/${hello.length} bytes gave ${JSON.stringify(result)}`);
      }
      expect(readClientHello(hello)).toMatchObject({ kind: 'hello', length: hello.length });
    }
  });

  test('re-framed into records of 1..50 bytes: the same result, byte by byte too', () => {
    const random = new Prng(0x5eed);
    for (const hello of [real.istio, real.alpn, real.openssl]) {
      const expected = readClientHello(hello);
      for (let round = 0; round < 20; round += 1) {
        const sizes = Array.from({ length: 400 }, () => random.int(1, 50));
        const reframed = inRecords(handshakeOf(hello), sizes, random.pick([0x0301, 0x0303]));
        expect(readClientHello(reframed)).toEqual({ ...expected, length: reframed.length });
        if (round === 0) {
          for (let end = 0; end < reframed.length; end += 1) {
            expect(readClientHello(reframed.subarray(0, end)).kind).toBe('incomplete');
          }
        }
      }
    }
  });

  test('the handshake header itself split over records', () => {
    const message = handshakeMessage(helloBody());
    for (const sizes of [[1], [1, 1, 1, 1], [2, 2, 16384], [3, 1, 40], [4, 16384]]) {
      const records = inRecords(message, sizes);
      expect(readClientHello(records)).toEqual({
        kind: 'hello',
        serverName: DEFAULT_SERVER_NAME,
        alpn: ['h2', 'http/1.1'],
        length: records.length,
      });
    }
  });

  test('an empty buffer is incomplete', () => {
    expect(readClientHello(new Uint8Array(0))).toEqual({ kind: 'incomplete' });
  });
});

describe('not TLS', () => {
  test('plain HTTP', () => {
    expectRejected(readClientHello(ascii('GET / HTTP/1.1\r\nHost: reviews\r\n\r\n')), 'not-tls', /HTTP\/1 request.*GET \//);
  });

  test('the HTTP/2 cleartext preface', () => {
    expectRejected(readClientHello(ascii('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')), 'not-tls', /HTTP\/2/);
  });

  test('an SSLv2-style hello (high bit set)', () => {
    const sslv2 = concatBytes(Uint8Array.of(0x80, 0x2e, 0x01, 0x03, 0x01, 0x00, 0x15, 0x00, 0x00, 0x00, 0x10), new Uint8Array(37).fill(7));
    expectRejected(readClientHello(sslv2), 'not-tls', /SSL 2\.0/);
  });

  test('the first byte is enough to refuse', () => {
    expectRejected(readClientHello(ascii('G')), 'not-tls');
    expectRejected(readClientHello(Uint8Array.of(0x80)), 'not-tls');
  });

  test('a TLS record that is not a handshake', () => {
    expectRejected(readClientHello(Uint8Array.of(21, 3, 3, 0, 2, 2, 40)), 'not-tls', /alert/);
    expectRejected(readClientHello(Uint8Array.of(23, 3, 3, 0, 1, 0)), 'not-tls', /application_data/);
  });

  test('a handshake byte without a TLS version, or a record length outside 1..2^14', () => {
    expectRejected(readClientHello(Uint8Array.of(22, 4)), 'not-tls');
    expectRejected(readClientHello(Uint8Array.of(22, 3, 5, 0, 1)), 'not-tls');
    expectRejected(readClientHello(Uint8Array.of(22, 3, 1, 0, 0)), 'not-tls', /record length 0/);
    expectRejected(readClientHello(Uint8Array.of(22, 3, 1, 0x40, 0x01)), 'not-tls', /record length 16385/);
  });

  test('random bytes', () => {
    const random = new Prng(42);
    for (let round = 0; round < 200; round += 1) {
      const bytes = random.bytes(random.int(1, 64));
      if (bytes[0] === 22) continue;
      expectRejected(readClientHello(bytes), 'not-tls');
    }
  });
});

describe('versions', () => {
  test('an SSL 3.0 record', () => {
    expectRejected(readClientHello(inRecords(handshakeMessage(helloBody({ legacyVersion: 0x0300 })), [16384], 0x0300)), 'unsupported-version', /SSL 3\.0/);
    expectRejected(readClientHello(Uint8Array.of(22, 3, 0)), 'unsupported-version');
  });

  test('an SSL 3.0 hello in a TLS record', () => {
    expectRejected(readClientHello(clientHello({ legacyVersion: 0x0300, extensions: null })), 'unsupported-version', /0x0300/);
  });

  test('record versions 0x0301..0x0304 and hello versions 0x0301.. are accepted', () => {
    for (const version of [0x0301, 0x0302, 0x0303, 0x0304]) {
      expect(readClientHello(inRecords(handshakeMessage(helloBody({ legacyVersion: version })), [16384], version)).kind).toBe('hello');
    }
    expectRejected(readClientHello(clientHello({ legacyVersion: 0x0401 })), 'malformed', /legacy_version/);
  });
});

describe('limits', () => {
  test('a handshake length of 1 MB is too large from its first 9 bytes', () => {
    const header = Uint8Array.of(22, 3, 1, 0x02, 0x00, 1, 0x10, 0x00, 0x00);
    expectRejected(readClientHello(header), 'too-large', /1048580-byte ClientHello/);
    expect(readClientHello(header.subarray(0, 8)).kind).toBe('incomplete');
  });

  test('a record that would end beyond maxBytes is too large from its header', () => {
    expectRejected(readClientHello(Uint8Array.of(22, 3, 1, 0x08, 0x00), 1024), 'too-large', /2053/);
    expect(readClientHello(Uint8Array.of(22, 3, 1, 0x03, 0xfb), 1024).kind).toBe('incomplete');
  });

  test('many small records whose headers add up beyond maxBytes', () => {
    const message = handshakeMessage(helloBody({ extensions: [serverNameExtension('a'.repeat(60)), { type: 21, data: new Uint8Array(2000) }] }));
    expect(readClientHello(inRecords(message, [1]), DEFAULT_MAX_HELLO_BYTES).kind).toBe('hello');
    const split = inRecords(message, [1]);
    expectRejected(readClientHello(split, split.length - 1), 'too-large');
    expect(readClientHello(split, split.length).kind).toBe('hello');
    // Known from the headers alone: 4 + 2 bytes in, the rest needs at least one more record header.
    expectRejected(readClientHello(split.subarray(0, 30), message.length + 9), 'too-large');
  });

  test('a real ClientHello fits the default limit many times over', () => {
    expect(real.istio.length).toBeLessThan(DEFAULT_MAX_HELLO_BYTES / 4);
    expectRejected(readClientHello(real.istio, real.istio.length - 1), 'too-large');
  });

  test('an invalid maxBytes is a programming error', () => {
    expect(() => readClientHello(real.istio, Number.NaN)).toThrow(RangeError);
    expect(() => readClientHello(real.istio, 4)).toThrow(RangeError);
  });
});

describe('the record layer around the hello', () => {
  const message = handshakeMessage(helloBody());

  test('a non-handshake record in the middle of a fragmented hello', () => {
    const first = inRecords(message.subarray(0, 40));
    const rest = inRecords(message.subarray(40));
    expectRejected(readClientHello(concatBytes(first, Uint8Array.of(20, 3, 3, 0, 1, 1), rest)), 'malformed', /change_cipher_spec/);
  });

  test('a later record with a bad version or length', () => {
    const first = inRecords(message.subarray(0, 40));
    expectRejected(readClientHello(concatBytes(first, Uint8Array.of(22, 3, 0, 0, 1, 0))), 'malformed', /record version 0x0300/);
    expectRejected(readClientHello(concatBytes(first, Uint8Array.of(22, 3, 3, 0, 0))), 'malformed', /record length 0/);
  });

  test('a handshake message other than ClientHello', () => {
    expectRejected(readClientHello(inRecords(handshakeMessage(helloBody(), 2))), 'malformed', /server_hello/);
    expectRejected(readClientHello(Uint8Array.of(22, 3, 3, 0, 10, 11)), 'malformed', /certificate/);
  });

  test('bytes coalesced after the ClientHello in its last record', () => {
    const coalesced = inRecords(concatBytes(message, Uint8Array.of(20, 0, 0, 0)));
    expectRejected(readClientHello(coalesced), 'malformed', /4 bytes follow the ClientHello/);
    expectRejected(readClientHello(coalesced.subarray(0, 9)), 'malformed');
  });
});

describe('the ClientHello body', () => {
  test('an old hello without extensions has no SNI', () => {
    expect(readClientHello(clientHello({ extensions: null }))).toMatchObject({ kind: 'hello', serverName: undefined, alpn: [] });
    expect(readClientHello(clientHello({ extensions: [] }))).toMatchObject({ kind: 'hello', serverName: undefined, alpn: [] });
  });

  test('field bounds', () => {
    const bad: [string, Uint8Array][] = [
      ['a 33-byte session_id', clientHello({ sessionId: new Uint8Array(33) })],
      ['an odd cipher_suites length', clientHello({ cipherSuites: Uint8Array.of(0x13, 0x01, 0x00) })],
      ['no cipher suites', clientHello({ cipherSuites: new Uint8Array(0) })],
      ['no compression methods', clientHello({ compressionMethods: new Uint8Array(0) })],
    ];
    for (const [what, bytes] of bad) expect(readClientHello(bytes), what).toMatchObject({ kind: 'rejected', reason: 'malformed' });
    expect(readClientHello(clientHello({ sessionId: new Uint8Array(0) })).kind).toBe('hello');
  });

  test('truncated inside each length field (the containers around it consistent)', () => {
    const body = helloBody({ extensions: null, sessionId: new Uint8Array(32) });
    const cutBody = (end: number): Uint8Array => inRecords(handshakeMessage(body.subarray(0, end)));
    const withExtension = (extension: Extension): Uint8Array => clientHello({ extensions: [extension] });
    const cases: [string, Uint8Array][] = [
      ['legacy_version', cutBody(1)],
      ['random', cutBody(20)],
      ['session_id length', cutBody(34)],
      ['session_id', cutBody(50)],
      ['cipher_suites length', cutBody(35 + 32 + 1)],
      ['cipher_suites', cutBody(35 + 32 + 2 + 3)],
      ['compression methods length', cutBody(35 + 32 + 2 + 6)],
      ['extensions length', clientHello({ extensionsBlock: u8(0) })],
      ['extensions block', clientHello({ extensionsBlock: concatBytes(u16(10), u16(0), u16(0)) })],
      ['extension type', clientHello({ extensionsBlock: vec16(u8(0)) })],
      ['extension data length', clientHello({ extensionsBlock: vec16(u16(0), u8(0)) })],
      ['extension data', clientHello({ extensionsBlock: vec16(u16(0), u16(5), u16(3)) })],
      ['server_name_list length', withExtension({ type: 0, data: u8(0) })],
      ['server_name entry after its name_type', withExtension({ type: 0, data: vec16(u8(0)) })],
      ['server_name host_name length', withExtension({ type: 0, data: vec16(u8(0), u8(0)) })],
      ['server_name host_name', withExtension({ type: 0, data: vec16(u8(0), u16(9), ascii('abc')) })],
      ['server_name_list longer than the extension', withExtension({ type: 0, data: concatBytes(u16(20), u8(0), vec16(ascii('abc'))) })],
      ['ALPN protocol_name_list length', withExtension({ type: 16, data: u8(0) })],
      ['ALPN protocol name length', withExtension({ type: 16, data: vec16(vec8(ascii('h2')), new Uint8Array(0), Uint8Array.of(9, 0x68)) })],
      ['ALPN list shorter than the extension', withExtension({ type: 16, data: concatBytes(vec16(vec8(ascii('h2'))), u8(0)) })],
    ];
    for (const [what, bytes] of cases) {
      expect(readClientHello(bytes), what).toMatchObject({ kind: 'rejected', reason: 'malformed' });
      // The same bytes cut short on the wire, with the outer lengths intact, are merely incomplete.
      expect(readClientHello(bytes.subarray(0, bytes.length - 1)), what).toEqual({ kind: 'incomplete' });
    }
  });

  test('trailing garbage inside the handshake message', () => {
    expectRejected(readClientHello(clientHello({ tail: Uint8Array.of(0) })), 'malformed', /1 stray bytes after extensions/);
    expectRejected(readClientHello(clientHello({ extensions: null, tail: Uint8Array.of(0) })), 'malformed');
    expectRejected(readClientHello(clientHello({ extensions: null, tail: Uint8Array.of(0, 0, 0) })), 'malformed');
  });

  test('duplicate extensions', () => {
    const twice = [SUPPORTED_VERSIONS_EXTENSION, SUPPORTED_VERSIONS_EXTENSION];
    expectRejected(readClientHello(clientHello({ extensions: twice })), 'malformed', /extension 43 appears twice/);
    const twoSni = [serverNameExtension('a.example'), serverNameExtension('a.example')];
    expectRejected(readClientHello(clientHello({ extensions: twoSni })), 'malformed', /extension 0 appears twice/);
  });
});

describe('server_name', () => {
  const sniOf = (...names: Parameters<typeof serverNameExtension>): HelloRead => readClientHello(clientHello({ extensions: [serverNameExtension(...names)] }));

  test('accepted forms', () => {
    const accepted: [string, string][] = [
      [ISTIO_SNI, ISTIO_SNI],
      ['reviews.global', 'reviews.global'],
      ['REVIEWS.Global.', 'reviews.global'],
      ['x', 'x'],
      ['a-b.c_d.e1', 'a-b.c_d.e1'],
      ['1.2.3.example', '1.2.3.example'],
      [`${'a'.repeat(63)}.example`, `${'a'.repeat(63)}.example`],
      [`${'a.'.repeat(126)}b`, `${'a.'.repeat(126)}b`],
      [`${'a.'.repeat(126)}b.`, `${'a.'.repeat(126)}b`],
    ];
    for (const [sent, read] of accepted) expect(sniOf(sent), sent).toMatchObject({ kind: 'hello', serverName: read });
  });

  test('IP literals are refused', () => {
    for (const ip of ['10.0.0.1', '127.1', '10.0.0.1.', '::1', '[::1]', 'fe80::1%eth0', '1']) {
      expect(sniOf(ip), ip).toMatchObject({ kind: 'rejected', reason: 'malformed' });
    }
    expectRejected(sniOf('10.0.0.1'), 'malformed', /IP address/);
  });

  test('invalid names are refused', () => {
    const invalid: [string, Uint8Array][] = [
      ['empty', new Uint8Array(0)],
      ['a lone dot', ascii('.')],
      ['an empty label', ascii('a..b')],
      ['a leading dot', ascii('.a.b')],
      ['two trailing dots', ascii('a.b..')],
      ['a 64-character label', ascii(`${'a'.repeat(64)}.example`)],
      ['254 characters', ascii(`${'a.'.repeat(126)}bc`)],
      ['a space', ascii('a b.example')],
      ['a NUL', Uint8Array.of(0x61, 0x00, 0x62)],
      ['UTF-8', Uint8Array.from(Buffer.from('bücher.example'))],
      ['a slash', ascii('a/b')],
      ['a colon and port', ascii('reviews.global:443')],
    ];
    for (const [what, name] of invalid) expect(sniOf(name), what).toMatchObject({ kind: 'rejected', reason: 'malformed' });
  });

  test('two host names are refused; an entry of another name type is skipped', () => {
    expectRejected(sniOf('a.example', 'b.example'), 'malformed', /two host_name/);
    expect(sniOf([7, ascii('opaque')], 'a.example')).toMatchObject({ kind: 'hello', serverName: 'a.example' });
    expect(sniOf([7, ascii('opaque')])).toMatchObject({ kind: 'hello', serverName: undefined });
  });

  test('an empty server_name extension (what servers send) or list is refused', () => {
    expectRejected(readClientHello(clientHello({ extensions: [{ type: 0, data: new Uint8Array(0) }] })), 'malformed');
    expectRejected(sniOf(), 'malformed', /server_name_list length 0/);
  });
});

describe('ALPN', () => {
  test('protocol names in order, every byte kept', () => {
    const extensions = [alpnExtension('h2', 'http/1.1', 'istio-peer-exchange'), serverNameExtension('a.example')];
    expect(readClientHello(clientHello({ extensions }))).toMatchObject({ alpn: ['h2', 'http/1.1', 'istio-peer-exchange'] });
    const binary = { type: 16, data: vec16(vec8(Uint8Array.of(0xff, 0x00, 0x80))) };
    expect(readClientHello(clientHello({ extensions: [binary] }))).toMatchObject({ alpn: ['\u00ff\u0000\u0080'] });
  });

  test('an empty list or an empty name is refused', () => {
    expectRejected(readClientHello(clientHello({ extensions: [alpnExtension()] })), 'malformed', /protocol_name_list length 0/);
    expectRejected(readClientHello(clientHello({ extensions: [alpnExtension('h2', '')] })), 'malformed', /ALPN protocol name length 0/);
  });
});

describe('fuzz', () => {
  const ITERATIONS = 20_000;
  const seed = Number(process.env.MESHFED_HELLO_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 32));

  /** A mutation of a well-formed hello: re-framing, bit flips, truncation, length-field damage, splices. */
  function mutate(random: Prng, base: Uint8Array): Uint8Array {
    let bytes = random.chance(0.3)
      ? inRecords(handshakeOf(base), Array.from({ length: 64 }, () => random.int(1, 50)), random.pick([0x0301, 0x0303]))
      : Uint8Array.from(base);
    for (let round = random.int(1, 3); round > 0; round -= 1) {
      const at = random.int(0, Math.max(0, bytes.length - 1));
      switch (random.int(0, 5)) {
        case 0:
          for (let flips = random.int(1, 8); flips > 0; flips -= 1) {
            const index = random.int(0, Math.max(0, bytes.length - 1));
            bytes[index] = (bytes[index] ?? 0) ^ (1 << random.int(0, 7));
          }
          break;
        case 1:
          bytes = bytes.subarray(0, random.int(0, bytes.length));
          break;
        case 2: {
          const value = random.pick([0, 1, 2, 0x7f, 0x80, 0xff, 0x100, 0x3fff, 0x4000, 0x4001, 0xffff, random.int(0, 0xffff)]);
          const wide = random.chance(0.5) ? u16(value) : u24(value);
          bytes.set(wide.subarray(0, Math.max(0, bytes.length - at)), at);
          break;
        }
        case 3:
          bytes[at] = ((bytes[at] ?? 0) + random.pick([-2, -1, 1, 2])) & 0xff;
          break;
        case 4: // the record version, or the legacy_version of a single-record hello
          if (bytes.length >= 11) bytes.set(u16(random.pick([0x0002, 0x0200, 0x0300, 0x0301, 0x0304, 0x0305, 0x0400])), random.pick([1, 9]));
          break;
        default:
          bytes = concatBytes(bytes.subarray(0, at), random.bytes(random.int(0, 8)), bytes.subarray(at + random.int(0, 8)));
      }
    }
    return bytes;
  }

  /** Random bytes, half of them behind a plausible record and handshake header so the body parser is reached. */
  function randomInput(random: Prng): Uint8Array {
    const bytes = random.bytes(random.int(0, 3000));
    if (random.chance(0.5) && bytes.length >= 9) {
      const length = random.int(1, bytes.length - 5);
      bytes.set(concatBytes(Uint8Array.of(22, 3, random.int(1, 4)), u16(length), u8(1), u24(random.chance(0.5) ? length - 4 : random.int(0, 4000))));
    }
    return bytes;
  }

  function check(input: Uint8Array, maxBytes: number, cut: number): HelloRead {
    const result = readClientHello(input, maxBytes);
    if (!['incomplete', 'hello', 'rejected'].includes(result.kind)) throw new Error(`unknown result ${JSON.stringify(result)}`);
    if (result.kind === 'hello') {
      if (result.serverName !== undefined && !isValidServerName(result.serverName)) throw new Error(`invalid serverName ${JSON.stringify(result.serverName)}`);
      if (!result.alpn.every((protocol) => typeof protocol === 'string' && protocol.length > 0)) throw new Error('bad ALPN list');
      if (result.length > input.length || result.length > maxBytes) throw new Error(`length ${result.length} out of range`);
      expect(readClientHello(input.subarray(0, result.length), maxBytes)).toEqual(result);
    } else if (result.kind === 'rejected') {
      if (!['not-tls', 'malformed', 'too-large', 'unsupported-version'].includes(result.reason) || result.detail === '') {
        throw new Error(`bad rejection ${JSON.stringify(result)}`);
      }
    }
    // A verdict reached on a prefix must not change when more bytes arrive.
    const early = readClientHello(input.subarray(0, cut), maxBytes);
    if (early.kind === 'hello') expect(result).toEqual(early);
    if (early.kind === 'rejected') expect(result).toMatchObject({ kind: 'rejected', reason: early.reason });
    return result;
  }

  test(`${ITERATIONS} random and mutated inputs: no throw, valid results, stable verdicts`, () => {
    const random = new Prng(seed);
    const bases = [real.istio, real.alpn, real.noSni, real.tls12, real.tls13, real.openssl, clientHello(), clientHello({ extensions: null })];
    const kinds = new Map<string, number>();
    for (let iteration = 0; iteration < ITERATIONS; iteration += 1) {
      const input = random.chance(0.2) ? randomInput(random) : mutate(random, random.pick(bases));
      const maxBytes = random.chance(0.8) ? DEFAULT_MAX_HELLO_BYTES : random.int(9, 3000);
      const cut = random.int(0, input.length);
      try {
        const result = check(input, maxBytes, cut);
        const key = result.kind === 'rejected' ? result.reason : result.kind;
        kinds.set(key, (kinds.get(key) ?? 0) + 1);
      } catch (error) {
        throw new Error(
          `fuzz failure (seed ${seed}, iteration ${iteration}, maxBytes ${maxBytes}, cut ${cut}; rerun with MESHFED_HELLO_FUZZ_SEED=${seed}): ` +
            `${error instanceof Error ? error.message : String(error)}\ninput: ${toHex(input)}`,
          { cause: error },
        );
      }
    }
    // The generator reaches every verdict, the body parser included.
    for (const kind of ['hello', 'incomplete', 'malformed', 'not-tls', 'too-large', 'unsupported-version']) {
      expect(kinds.get(kind) ?? 0, `${kind} (seed ${seed})`).toBeGreaterThan(20);
    }
  });
});
