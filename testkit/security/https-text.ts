/** A GET over HTTPS trusting a private CA (fetch takes no CA), for tests that read /metrics and the like. */
import { get as httpsGet } from 'node:https';

/** The body of a GET of `url` over HTTPS trusting `ca`, with a bearer token when given. */
export function httpsText(url: string, ca: Buffer, token?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    httpsGet(url, { ca, headers: token === undefined ? {} : { authorization: `Bearer ${token}` } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      res.on('error', reject);
    }).on('error', reject);
  });
}
