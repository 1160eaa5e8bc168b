// A loopback fake of OpenAI for the browser tests, speaking OpenAI's documented shapes:
// `GET /v1/models` (a model list; 401 with OpenAI's error body for a key containing
// "invalid"), and `POST /v1/chat/completions` (a chat.completion object whose usage is
// always 1,500 prompt + 500 completion tokens, so every cost the pages show is known).
// Every request is recorded; binds 127.0.0.1 only.

import http from 'node:http';

export const ANSWER = 'Failed logins: SELECT * FROM cloudtrail WHERE errorCode IS NOT NULL';
export const USAGE = { prompt_tokens: 1500, completion_tokens: 500, total_tokens: 2000 };

export async function startFakeOpenAI() {
  const requests = [];
  const server = http.createServer((req, res) => {
    let raw = '';
    req.on('data', (c) => { raw += c; });
    req.on('end', () => {
      const auth = req.headers.authorization || '';
      requests.push({ method: req.method, path: req.url, auth, body: raw });
      const send = (status, body) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      };
      if (!auth.startsWith('Bearer sk-') || auth.includes('invalid')) {
        send(401, { error: { message: 'Incorrect API key provided', type: 'invalid_request_error', code: 'invalid_api_key' } });
        return;
      }
      if (req.method === 'GET' && req.url === '/v1/models') {
        const ids = ['gpt-4o', 'gpt-4o-mini', 'gpt-4.1', 'gpt-4.1-mini', 'gpt-4-turbo', 'gpt-3.5-turbo'];
        send(200, { object: 'list', data: ids.map((id) => ({ id, object: 'model', created: 1721172741, owned_by: 'system' })) });
        return;
      }
      if (req.method === 'POST' && req.url === '/v1/chat/completions') {
        const body = JSON.parse(raw || '{}');
        send(200, {
          id: 'chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG', object: 'chat.completion', created: 1741570283,
          model: body.model,
          choices: [{ index: 0, message: { role: 'assistant', content: ANSWER, refusal: null }, logprobs: null, finish_reason: 'stop' }],
          usage: USAGE,
        });
        return;
      }
      send(404, { error: { message: 'not found', type: 'invalid_request_error' } });
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${server.address().port}`, requests, close: () => server.close() };
}
