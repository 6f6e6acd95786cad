export {
  DatastoreActivityId,
  OCSF_CATEGORY_APPLICATION,
  OCSF_CLASS_DATASTORE_ACTIVITY,
  OCSF_SCHEMA_VERSION,
  OcsfActionId,
  OcsfDispositionId,
  OcsfSeverityId,
  OcsfStatusId,
  type OcsfActor,
  type OcsfDatastoreActivity,
  type OcsfNetworkEndpoint,
  type OcsfUser,
} from './ocsf-event.js';
export { datastoreActivityOf, encodeOcsfJson, toOcsf, type ToOcsfOptions } from './to-ocsf.js';
export { checkOcsfShape } from './check-ocsf-shape.js';
