// Starts llm-local on a fresh data directory, on a free loopback port, pointed at the
// fake upstream; makes tokens with the binary's own CLI; calls the API as a client would.

import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export async function startGateway({ bin, upstream }) {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'dashboard-'));
  const logPath = path.join(dataDir, 'gateway.log');
  const log = fs.openSync(logPath, 'a');
  const child = spawn(bin, ['serve', '--addr', '127.0.0.1:0', '--data-dir', dataDir], {
    env: { ...process.env, LLM_PROVIDER_URL_OPENAI: `${upstream}/v1`, RUST_LOG: 'info' },
    stdio: ['ignore', 'pipe', log],
  });
  const url = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`llm-local did not start: ${out}`)), 20000);
    child.stdout.on('data', (c) => {
      out += c;
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    });
    child.on('exit', (code) => reject(new Error(`llm-local exited ${code}: ${out}`)));
  });
  const token = (user, ...flags) => execFileSync(bin, ['token', 'create', '--user', user, ...flags, '--data-dir', dataDir])
    .toString().trim();
  const api = async (tok, method, p, body) => {
    const res = await fetch(`${url}${p}`, {
      method,
      headers: { Authorization: `Bearer ${tok}`, 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null, text };
  };
  const stop = async () => {
    child.kill('SIGTERM');
    await new Promise((resolve) => (child.exitCode !== null ? resolve() : child.on('exit', resolve)));
  };
  return { url, dataDir, logPath, token, api, stop, pid: child.pid };
}

/** Every file under dir, read as text, for leak searches. */
export function readTree(dir) {
  const out = [];
  for (const name of fs.readdirSync(dir)) {
    const p = path.join(dir, name);
    const st = fs.statSync(p);
    if (st.isDirectory()) out.push(...readTree(p));
    else out.push({ path: p, text: fs.readFileSync(p).toString('latin1') });
  }
  return out;
}
