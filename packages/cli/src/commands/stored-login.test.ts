import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { credentialsPath, isLoopbackUrl } from './stored-login.js';

describe('credentialsPath', () => {
  it('prefers --config-file, made absolute', () => {
    expect(credentialsPath('creds.json', { HOME: '/home/ada' })).toBe(resolve('creds.json'));
  });

  it('follows XDG_CONFIG_HOME, else ~/.config, on Linux', () => {
    expect(
      credentialsPath(undefined, { HOME: '/home/ada', XDG_CONFIG_HOME: '/cfg' }, 'linux'),
    ).toBe('/cfg/portcullis/credentials.json');
    expect(credentialsPath(undefined, { HOME: '/home/ada', XDG_CONFIG_HOME: '' }, 'linux')).toBe(
      '/home/ada/.config/portcullis/credentials.json',
    );
    expect(credentialsPath(undefined, { HOME: '/Users/ada' }, 'darwin')).toBe(
      '/Users/ada/Library/Application Support/portcullis/credentials.json',
    );
  });
});

describe('isLoopbackUrl', () => {
  it('accepts only this machine', () => {
    for (const url of [
      'http://127.0.0.1:9000',
      'http://localhost/x',
      'http://[::1]:80',
      'http://127.1.2.3',
    ]) {
      expect(isLoopbackUrl(url), url).toBe(true);
    }
    for (const url of [
      'http://10.0.0.1',
      'http://127.0.0.1.example.com',
      'http://localhost.evil',
      'nonsense',
    ]) {
      expect(isLoopbackUrl(url), url).toBe(false);
    }
  });
});
