import { describe, expect, it } from 'vitest';
import { functionTraits } from './function-traits.js';

describe('functionTraits', () => {
  it('knows server file, network and state-changing functions', () => {
    expect(functionTraits('pg_read_file')).toEqual({
      flags: ['server-file-access'],
      changesState: false,
    });
    expect(functionTraits('pg_ls_waldir')?.flags).toEqual(['server-file-access']);
    expect(functionTraits('lo_export')).toEqual({
      flags: ['server-file-access'],
      changesState: true,
    });
    expect(functionTraits('dblink_connect_u')).toEqual({
      flags: ['network-access'],
      changesState: true,
    });
    expect(functionTraits('http_post')?.flags).toEqual(['network-access']);
    for (const name of ['nextval', 'setval', 'pg_advisory_xact_lock', 'pg_try_advisory_lock']) {
      expect(functionTraits(name)).toEqual({ flags: [], changesState: true });
    }
    expect(functionTraits('pg_terminate_backend')?.changesState).toBe(true);
  });

  it('matches in lower case and leaves ordinary functions alone', () => {
    expect(functionTraits('PG_READ_FILE')?.flags).toEqual(['server-file-access']);
    for (const name of ['now', 'count', 'lower', 'currval', 'lo_get', 'pg_sleep', 'set_config']) {
      expect(functionTraits(name)).toBeUndefined();
    }
  });
});
