/**
 * The gateway reads statement text as UTF-8 with standard-conforming strings; a session whose
 * server settings say otherwise would be read differently by the gateway than by the server
 * (a literal could hide a statement, or a statement a literal). Returns why a setting makes
 * the session unreadable, or null when it is fine.
 */
export function unreadableSetting(name: string, value: string): string | null {
  if (name === 'client_encoding' && value.toUpperCase() !== 'UTF8') {
    return `client_encoding is ${value}; Portcullis reads statements as UTF8 (set client_encoding to UTF8)`;
  }
  if (name === 'standard_conforming_strings' && value !== 'on') {
    return 'standard_conforming_strings is off; Portcullis reads statements with it on';
  }
  return null;
}
