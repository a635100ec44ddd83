// The REST client: every call goes through `api()`, which sends the session
// cookie (same origin), adds the CSRF token to writes (the server answers 403
// `csrf` without it) and turns the API's one error shape
// `{"error":{"code","message","field"?}}` into an ApiError.

const state = {
  session: null, // {username, role, csrf_token, expires_at}
  onUnauthorized: null,
};

export class ApiError extends Error {
  constructor(status, code, message, field, retryAfter) {
    super(message || code || `HTTP ${status}`);
    this.status = status;
    this.code = code;
    this.field = field;
    this.retryAfter = retryAfter;
  }
}

export function session() {
  return state.session;
}

export function setSession(s) {
  state.session = s;
}

/** Called with no arguments when an API call answers 401 (session gone). */
export function onUnauthorized(fn) {
  state.onUnauthorized = fn;
}

const RANK = { viewer: 1, operator: 2, admin: 3 };

/** Whether the signed-in user has at least `role`. */
export function can(role) {
  const s = state.session;
  return !!s && (RANK[s.role] || 0) >= (RANK[role] || 99);
}

/** Headers a cookie-authenticated write needs. */
export function csrfHeaders() {
  return state.session ? { 'X-CSRF-Token': state.session.csrf_token } : {};
}

async function errorOf(resp) {
  let code = `http_${resp.status}`;
  let message = `${resp.status} ${resp.statusText}`;
  let field;
  try {
    const body = await resp.json();
    if (body && body.error) {
      code = body.error.code || code;
      message = body.error.message || message;
      field = body.error.field;
    }
  } catch {
    // Not JSON (a proxy's error page): keep the status line.
  }
  const retry = Number(resp.headers.get('Retry-After'));
  return new ApiError(resp.status, code, message, field, Number.isFinite(retry) ? retry : undefined);
}

/**
 * `api('GET', '/devices', {query})`, `api('POST', '/sources', {body})`.
 * Paths are relative to /api/v1. Resolves to the parsed JSON (or null for
 * 204), rejects with ApiError.
 */
export async function api(method, path, { body, query, signal, quiet401 } = {}) {
  let url = `/api/v1${path}`;
  if (query) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) {
      if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
    }
    const s = q.toString();
    if (s) url += `?${s}`;
  }
  const headers = { Accept: 'application/json' };
  if (method !== 'GET' && method !== 'HEAD') Object.assign(headers, csrfHeaders());
  let payload;
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  const resp = await fetch(url, { method, headers, body: payload, credentials: 'same-origin', signal });
  if (!resp.ok) {
    const err = await errorOf(resp);
    if (resp.status === 401 && !quiet401 && state.onUnauthorized) state.onUnauthorized();
    throw err;
  }
  if (resp.status === 204) return null;
  const text = await resp.text();
  return text ? JSON.parse(text) : null;
}

/** A live-output URL from the API (absolute, maybe signed) as a same-origin path. */
export function localUrl(u) {
  if (!u) return null;
  try {
    const parsed = new URL(u, location.href);
    return parsed.pathname + parsed.search;
  } catch {
    return null;
  }
}
