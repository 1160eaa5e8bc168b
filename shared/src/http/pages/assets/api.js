// The public API, and nothing else: every number on a page comes from these calls.

const TOKEN_KEY = 'llm-gateway-token';

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

export class ApiError extends Error {
  constructor(status, code, message, requestId, details) {
    super(message);
    this.details = details || {};
    this.status = status;
    this.code = code;
    this.requestId = requestId;
  }
}

async function send(method, path, body) {
  const headers = { Accept: 'application/json' };
  const t = token();
  if (t) headers.Authorization = `Bearer ${t}`;
  const init = { method, headers };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  return fetch(path, init);
}

/** Calls the API; a non-2xx answer throws ApiError with the server's message. */
export async function api(method, path, body) {
  let res;
  try {
    res = await send(method, path, body);
  } catch (e) {
    throw new ApiError(0, 'network', 'The gateway could not be reached.', null);
  }
  if (res.status === 204) return null;
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch (e) {
    data = null;
  }
  if (!res.ok) {
    const err = (data && data.error) || {};
    if (res.status === 401 && token()) window.dispatchEvent(new Event('gateway:unauthorized'));
    throw new ApiError(res.status, err.code || `http_${res.status}`,
      err.message || `${res.status} ${res.statusText}`, err.requestId || null, err);
  }
  return data;
}

/** The same call, answered as a Blob (exports). */
export async function download(path) {
  const res = await send('GET', path);
  if (!res.ok) throw new ApiError(res.status, `http_${res.status}`, `Export failed (${res.status})`, null);
  return res.blob();
}

export const get = (path) => api('GET', path);
export const put = (path, body) => api('PUT', path, body);
export const post = (path, body) => api('POST', path, body);
export const del = (path) => api('DELETE', path);

/** One path segment, URL-encoded (user ids may hold any character the API allows). */
export const seg = (s) => encodeURIComponent(s);

/** The text a failed call shows: the server's message, with its request id. */
export function describe(e) {
  if (e instanceof ApiError) return e.requestId ? `${e.message} (request ${e.requestId})` : e.message;
  return String(e && e.message ? e.message : e);
}
