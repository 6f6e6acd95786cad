import { Command } from 'commander';
import { configJsonSchema, loadConfigFile } from '@portcullis/gateway';

/** `portcullis config`: check a configuration file, print the JSON Schema. */
export function configCommand(): Command {
  const config = new Command('config').description('check configuration files');
  config
    .command('check')
    .description('validate a configuration file and resolve its secrets, without starting anything')
    .argument('<file>', 'YAML configuration file')
    .action((file: string) => {
      const cfg = loadConfigFile(file, process.env);
      const resources = Object.keys(cfg.resources);
      console.log(
        `${file} is valid: listener ${cfg.postgres.host}:${cfg.postgres.port}, ${resources.length} resource(s) (${resources.join(', ')}), ${Object.keys(cfg.tokens).length} token(s), ${cfg.processes} process(es)`,
      );
    });
  config
    .command('schema')
    .description('print the JSON Schema of the configuration file')
    .action(() => {
      process.stdout.write(configJsonSchema());
    });
  return config;
}
