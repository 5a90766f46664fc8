/**
 * The REST API with the bearer token. The token lives in sessionStorage (this tab, until it closes) and is only ever
 * sent in the Authorization header of same-origin /api/v1 requests.
 */

const TOKEN_KEY = 'meshfed.token';

export class ApiError extends Error {
  /** @param {number} status @param {string} message */
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export const token = {
  /** @returns {string | null} */
  get: () => sessionStorage.getItem(TOKEN_KEY),
  /** @param {string} value */
  set: (value) => {
    sessionStorage.setItem(TOKEN_KEY, value);
  },
  clear: () => {
    sessionStorage.removeItem(TOKEN_KEY);
  },
};

/**
 * @param {Response} response
 * @returns {Promise<unknown>}
 */
const readJson = (response) => response.json();

/**
 * GET /api/v1/PATH; a refused token, an unreachable manager or an error answer becomes an ApiError with the API's message.
 * @param {string} path
 * @param {'json' | 'text'} [as]
 * @returns {Promise<unknown>}
 */
export async function get(path, as = 'json') {
  let response;
  try {
    response = await fetch(`/api/v1${path}`, { headers: { authorization: `Bearer ${token.get() ?? ''}` }, cache: 'no-store', signal: AbortSignal.timeout(10_000) });
  } catch (error) {
    throw new ApiError(0, `meshfed does not answer (${error instanceof Error ? error.message : String(error)})`);
  }
  if (!response.ok) {
    /** @type {import('./types').ApiErrorBody} */
    let body = {};
    try {
      body = /** @type {import('./types').ApiErrorBody} */ (await readJson(response));
    } catch {
      // not JSON: the status says enough
    }
    const message = response.status === 401 ? 'the API token was refused' : (body.error?.message ?? `HTTP ${String(response.status)}`);
    throw new ApiError(response.status, message);
  }
  if (as === 'text') return await response.text();
  return await readJson(response);
}
