// The signed-in token, kept in sessionStorage (this tab only, gone when it
// closes), and what its payload says. The payload is decoded here only to show
// who is signed in and whether to show the admin views: the server checks the
// signature and the admin flag on every call.

const KEY = 'strategist.token';

/** Why a pasted token cannot be used. */
export class TokenError extends Error {}

function base64UrlJson(part) {
  const b64 = part.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(part.length / 4) * 4, '=');
  const bin = atob(b64);
  const utf8 = Uint8Array.from(bin, (c) => c.charCodeAt(0));
  return JSON.parse(new TextDecoder().decode(utf8));
}

/**
 * The token's claims `{sub, admin, exp}`; throws a TokenError when it is not a
 * JWT with a user and an expiry, or has expired.
 */
export function claims(token) {
  const parts = token.split('.');
  if (parts.length !== 3) throw new TokenError('This is not a token: a token has three parts separated by dots.');
  let payload;
  try {
    payload = base64UrlJson(parts[1]);
  } catch {
    throw new TokenError('This token cannot be read: its middle part is not JSON.');
  }
  if (typeof payload.sub !== 'string' || payload.sub === '' || typeof payload.exp !== 'number') {
    throw new TokenError('This token names no user or no expiry.');
  }
  if (payload.exp * 1000 <= Date.now()) throw new TokenError('This token has expired: make a new one.');
  return { sub: payload.sub, admin: payload.admin === true, exp: payload.exp };
}

/** A pasted token without spaces or a `Bearer ` prefix. */
export function clean(text) {
  return text.trim().replace(/^bearer\s+/i, '').replace(/\s+/g, '');
}

/** The stored token, or null. */
export function load() {
  try {
    return sessionStorage.getItem(KEY);
  } catch {
    return null;
  }
}

/** Keeps the token for this tab. */
export function save(token) {
  try {
    sessionStorage.setItem(KEY, token);
  } catch {
    // Storage refused (private mode, quota): the session lasts until reload.
  }
}

/** Forgets the token. */
export function clear() {
  try {
    sessionStorage.removeItem(KEY);
  } catch {
    // Nothing stored.
  }
}
