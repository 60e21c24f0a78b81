// The REST API client: JSON in, JSON out, errors as ApiError with the API's stable `code`.
import { config } from './config.js';
import { token } from './session.js';

export class ApiError extends Error {
  constructor(status, code, message, retryAfter = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

/** Call the API; `auth` adds the signed-in owner's bearer token. Resolves to the parsed JSON (null for 204). */
export async function api(path, { method = 'GET', body, auth = false, signal } = {}) {
  const { apiUrl } = await config();
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (auth) {
    const bearer = token();
    if (!bearer) throw new ApiError(401, 'unauthorized', 'Sign in to the studio first.');
    headers.Authorization = `Bearer ${bearer}`;
  }
  let response;
  try {
    response = await fetch(new URL(path, apiUrl), {
      method, headers, signal, body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (error) {
    if (error.name === 'AbortError') throw error;
    throw new ApiError(0, 'network', 'The server cannot be reached. Check your connection.');
  }
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const detail = (data && data.error) || {};
    throw new ApiError(response.status, detail.code || `http_${response.status}`,
      detail.message || `The server answered ${response.status}.`, response.headers.get('Retry-After'));
  }
  return data;
}
