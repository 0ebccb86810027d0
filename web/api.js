// Calls to the JSON API with the bearer token. Errors come back as ApiError with
// the server's `{"error": {"code", "message"}}`; a 401 also calls `onUnauthorized`
// (the token expired or was refused), so the page can sign the person out.

/** An error answer of the API, or a network failure (status 0). */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** The query string of `params`, skipping empty values. */
function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== null && v !== undefined && v !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

/** An API client for one token. */
export function createApi(token, onUnauthorized) {
  async function call(method, path, params, body) {
    const headers = { Authorization: `Bearer ${token}`, Accept: 'application/json' };
    const init = { method, headers, cache: 'no-store' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(path + query(params), init);
    } catch (e) {
      throw new ApiError(0, 'network', `The server cannot be reached (${e.message}).`);
    }
    if (res.status === 204) return null;
    let data = null;
    try {
      data = await res.json();
    } catch {
      data = null;
    }
    if (!res.ok) {
      const err = data && data.error ? data.error : {};
      const e = new ApiError(res.status, err.code || 'http_error', err.message || `HTTP ${res.status}`);
      if (res.status === 401 && onUnauthorized) onUnauthorized(e);
      throw e;
    }
    return data;
  }
  return {
    token,
    get: (path, params) => call('GET', path, params),
    post: (path, body) => call('POST', path, undefined, body),
  };
}
