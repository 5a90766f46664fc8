/**
 * A proxyless gRPC client standing in one cluster, run by the isolated tier inside that cluster's network namespace
 * (`node --import tsx test/sim/netns-client.ts`, GRPC_XDS_BOOTSTRAP = the bootstrap `meshfed sim-cluster` wrote): a
 * real @grpc/grpc-js-xds client calling xds:///reviews.global over mTLS, every CALL_EVERY_MS, printing one JSON line
 * per call (the reply, or the error). Bounded in count and time; exits at the first of MAX_CALLS, MAX_MS or SIGTERM.
 */
import * as grpc from '@grpc/grpc-js';
import { register, XdsChannelCredentials } from '@grpc/grpc-js-xds';
import { echo, echoClient } from '../../src/sim/echo.js';

const CALL_EVERY_MS = 200;
const MAX_CALLS = 3_000;
const MAX_MS = 300_000;

register();
const client = echoClient('xds:///reviews.global', new XdsChannelCredentials(grpc.credentials.createInsecure()));
const stop = new AbortController();
process.once('SIGTERM', () => {
  stop.abort();
});
const deadline = Date.now() + MAX_MS;
for (let call = 0; call < MAX_CALLS && !stop.signal.aborted && Date.now() < deadline; call++) {
  try {
    const reply = await echo(client, `call ${String(call)}`);
    process.stdout.write(`${JSON.stringify({ ok: true, cluster: reply.cluster, endpoint: reply.endpoint, peer: reply.peer })}\n`);
  } catch (error) {
    process.stdout.write(`${JSON.stringify({ ok: false, error: (error as Error).message })}\n`);
  }
  await new Promise((done) => setTimeout(done, CALL_EVERY_MS));
}
client.close();
// grpc-js-xds keeps its connection to the xDS server open after the last channel closes
process.exit(0);
