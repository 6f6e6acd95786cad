/**
 * CRC-32C (Castagnoli), the checksum of a Kafka record batch (magic 2). The spool frames its
 * records with the same function: one slicing-by-8 implementation serves both, so it is
 * re-exported here rather than written twice.
 */
export { crc32c } from '../spool/crc32c.js';
