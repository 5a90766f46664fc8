/** The federated view: pure functions from the snapshot and the asking proxy to what that proxy should see. */
export { localityPriority, localityReason, compareLocality, type LocalityPriority, type LocalityReason } from './priority.js';
export { indexGateways, gatewaysFor, lcm, type GatewayIndex, type NetworkGateway, type SkippedGateway } from './gateways.js';
export {
  loadAssignment,
  lbHealth,
  endpointPort,
  endpointLocality,
  type ProxyView,
  type LbHealth,
  type LbVia,
  type LbEndpoint,
  type LocalityGroup,
  type LoadAssignment,
  type DroppedEndpoint,
  type DropReason,
} from './split-horizon.js';
export { federatedCatalog, serviceHost, DEFAULT_DOMAIN_SUFFIX, type Catalog, type CatalogService, type CatalogPort } from './catalog.js';
export { gatewayAssignment, gatewayVirtualDestinationAssignment } from './gateway-targets.js';
export { forProxylessClients } from './proxyless.js';
export {
  virtualDestinationAssignment,
  virtualDestinationClusters,
  virtualDestinationBackends,
  type BackendCluster,
  type VirtualDestinationAssignment,
  type VirtualDestinationDrain,
  type GroupPlacement,
  type TierReason,
  type PlacementReason,
} from './virtual-destinations.js';
