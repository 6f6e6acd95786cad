import { z } from 'zod';
import { gatewayConfigSchema } from './config-schema.js';

/** The JSON Schema of the configuration file, as published in docs/config.schema.json. */
export function configJsonSchema(): string {
  const schema = z.toJSONSchema(gatewayConfigSchema, { io: 'input' });
  return `${JSON.stringify({ ...schema, title: 'Portcullis gateway configuration' }, null, 2)}\n`;
}
