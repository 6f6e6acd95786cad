// Statement holds in approval suites: send a statement a `review` rule holds and learn the
// approval id its NOTICE names, with the query still pending until someone decides.
import type pg from 'pg';

/** Sends `sql` and resolves with the approval id from the hold's NOTICE (and the pending query). */
export async function holdStatement(
  client: pg.Client,
  sql: string,
): Promise<{ id: string; result: Promise<pg.QueryResult> }> {
  const notice = new Promise<string>((resolve) =>
    client.once('notice', (msg) => resolve(msg.message ?? '')),
  );
  const result = client.query(sql);
  result.catch(() => undefined);
  const message = await notice;
  const id = /approval (apr_[\w-]+)/.exec(message)?.[1];
  if (id === undefined) throw new Error(`no approval id in the notice: ${message}`);
  return { id, result };
}
