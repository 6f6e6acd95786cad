import { describe, expect, it } from 'vitest';
import { apiFailureMessage } from './event-source.js';
import { GatewayApiError } from './gateway-api.js';

const URL = 'http://127.0.0.1:9090';

describe('apiFailureMessage', () => {
  it('says what to do when the gateway cannot be reached', () => {
    const err = new GatewayApiError(0, 'unreachable', `cannot reach the gateway at ${URL}`);
    expect(apiFailureMessage(err, URL)).toBe(
      `cannot reach the gateway at ${URL}; pass --gateway <its HTTP API URL>, or stop the gateway to read the store directly`,
    );
  });

  it('sends a refused credential to portcullis login', () => {
    const err = new GatewayApiError(401, 'invalid_token', 'the gateway credential was refused');
    expect(apiFailureMessage(err, URL)).toBe(
      `the gateway refused your credential (the gateway credential was refused); run portcullis login --gateway ${URL}`,
    );
  });

  it("passes on the gateway's reader refusals, which name events.readerGroups", () => {
    const err = new GatewayApiError(
      403,
      'not_a_reader',
      'only members of audit (events.readerGroups) may read events; ask to be added to one of them',
    );
    expect(apiFailureMessage(err, URL)).toBe(`the gateway refused: ${err.message}`);
    const agent = new GatewayApiError(403, 'forbidden', 'an agent may not read events');
    expect(apiFailureMessage(agent, URL)).toContain('events.readerGroups');
  });

  it('explains a gateway without the event API', () => {
    const err = new GatewayApiError(404, 'not_found', 'no API endpoint at /v1/reviews/activity');
    expect(apiFailureMessage(err, URL)).toContain(`the gateway at ${URL} serves no event API`);
  });
});
