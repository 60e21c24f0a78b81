// Who the browser is: a signed-in owner (a bearer token kept in localStorage) and a stable anonymous viewer id.
// The token is never put in a URL the page navigates to; the WebSocket gets it as `?token=` like the seed did,
// because browsers cannot set headers on a WebSocket handshake.

const TOKEN_KEY = 'capturestream.token';
const VIEWER_KEY = 'capturestream.viewer';

export function token() {
  return localStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  if (value) localStorage.setItem(TOKEN_KEY, value);
  else localStorage.removeItem(TOKEN_KEY);
}

/** The JWT's claims (unverified: for display only; the server checks the signature). */
export function claims() {
  const value = token();
  if (!value) return null;
  try {
    const payload = value.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const parsed = JSON.parse(atob(payload));
    if (parsed.exp && parsed.exp * 1000 < Date.now()) return null;
    return parsed;
  } catch {
    return null;
  }
}

/** A random id kept in localStorage: one viewer across reloads (the server counts viewers by it). */
export function viewerId() {
  let id = localStorage.getItem(VIEWER_KEY);
  if (!id || !/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/.test(id)) {
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    id = Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
    localStorage.setItem(VIEWER_KEY, id);
  }
  return id;
}
