/**
 * mTLS for proxyless gRPC clients (gRFC A29, as @grpc/grpc-js-xds 1.14 implements it): the EDS Cluster carries an
 * UpstreamTlsContext naming certificate provider instances of the client's bootstrap, not SDS secrets. grpc-js-xds
 * (xds-resource-type/cluster-resource-type.js, validateTransportSocket) needs:
 * - common_tls_context.tls_certificate_provider_instance: the instance holding the client's own certificate;
 * - a validation context (here combined_validation_context.default_validation_context) with
 *   ca_certificate_provider_instance: the instance holding the trust bundle; without it the cluster is NACKed;
 * - match_subject_alt_names (StringMatcher, not the typed form Envoy prefers): checked against the server
 *   certificate's SANs (load-balancer-cds.js, SanMatcher), here the SPIFFE IDs of the service's workloads;
 * - no tls_params, no custom handshaker, no SDS secret configs.
 * The instance names must exist in the client's bootstrap `certificate_providers` (grpc NACKs the cluster
 * otherwise). meshfed uses one instance, `default` unless told otherwise, for both (a file_watcher provider with
 * certificate_file, private_key_file and ca_certificate_file, as Istio's proxyless bootstrap does), with the
 * certificate names Istio uses, `default` and `ROOTCA`. grpc sends the target's host as SNI, which the east-west
 * gateway accepts.
 */
import { MESSAGE_NAME, TYPE_URL } from '../envoy-protos.js';
import { nestedAny } from './listener.js';
import { TLS_TRANSPORT_SOCKET_NAME, ROOT_CA_SECRET, WORKLOAD_CERTIFICATE_SECRET, type TransportSocketObject } from './sidecar-cluster.js';

export const DEFAULT_CERTIFICATE_PROVIDER = 'default';

export interface ProxylessTlsContextObject {
  common_tls_context: {
    tls_certificate_provider_instance: { instance_name: string; certificate_name: string };
    combined_validation_context: {
      default_validation_context: {
        ca_certificate_provider_instance: { instance_name: string; certificate_name: string };
        match_subject_alt_names?: { exact: string }[];
      };
    };
  };
}

/** The UpstreamTlsContext: the client's certificate and the trust bundle from `instance`; the peer must be one of `spiffeIds` (any, when empty). */
export function proxylessTlsContext(instance: string, spiffeIds: readonly string[]): ProxylessTlsContextObject {
  if (instance === '') throw new Error('proxyless mTLS: the certificate provider instance name is empty');
  const validation: ProxylessTlsContextObject['common_tls_context']['combined_validation_context']['default_validation_context'] = {
    ca_certificate_provider_instance: { instance_name: instance, certificate_name: ROOT_CA_SECRET },
  };
  if (spiffeIds.length > 0) validation.match_subject_alt_names = [...new Set(spiffeIds)].sort().map((exact) => ({ exact }));
  return {
    common_tls_context: {
      tls_certificate_provider_instance: { instance_name: instance, certificate_name: WORKLOAD_CERTIFICATE_SECRET },
      combined_validation_context: { default_validation_context: validation },
    },
  };
}

/** The Cluster's transport_socket for proxyless mTLS. */
export function proxylessTransportSocket(instance: string, spiffeIds: readonly string[]): TransportSocketObject {
  return { name: TLS_TRANSPORT_SOCKET_NAME, typed_config: nestedAny(MESSAGE_NAME.upstreamTlsContext, TYPE_URL.upstreamTlsContext, proxylessTlsContext(instance, spiffeIds)) };
}
