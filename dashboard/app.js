/**
 * The dashboard: sign-in with the API token (typed, or `#token=...` in the URL fragment, which never reaches the
 * server), hash routes `#/VIEW[/ID][?QUERY]`, and a refresh of the open view every 2 seconds.
 */
import { ApiError, token } from './api.js';
import { h } from './dom.js';
import { views } from './views.js';

const REFRESH_MS = 2_000;

/** @param {string} id */
function byId(id) {
  const element = document.getElementById(id);
  if (!element) throw new Error(`the page has no #${id}`);
  return element;
}

const main = byId('main');
const nav = byId('nav');
const status = byId('status');
const logout = byId('logout');

/** @typedef {{ view: string, params: Record<string, string> }} Route */

/** @returns {Route} */
function route() {
  const [path = '', query = ''] = location.hash.replace(/^#\/?/, '').split('?');
  const [view = 'clusters', id] = path.split('/');
  /** @type {Record<string, string>} */
  const params = Object.fromEntries(new URLSearchParams(query));
  if (id !== undefined && id !== '') params.id = decodeURIComponent(id);
  return { view: view in views ? view : 'clusters', params };
}

/** what is on screen: the route it shows and where the view's body goes */
/** @type {{ key: string, body: HTMLElement } | undefined} */
let shown;
let refreshing = false;

/** @param {string} text @param {boolean} [error] */
function say(text, error = false) {
  status.textContent = text;
  status.classList.toggle('error', error);
}

/** @param {string} [message] */
function showLogin(message) {
  shown = undefined;
  nav.hidden = true;
  logout.hidden = true;
  say('');
  const input = h('input', { type: 'password', id: 'token', name: 'token', autocomplete: 'off', required: true, size: 48 });
  const form = h(
    'form',
    { id: 'login', class: 'login' },
    h('h1', {}, 'Sign in to meshfed'),
    h('p', {}, 'The API token is in STATE_DIR/api-token (', h('code', {}, '.meshfed/demo/api-token'), ' for npm start), or MESHFED_API_TOKEN.'),
    h('label', { for: 'token' }, 'API token'),
    input,
    h('button', { type: 'submit' }, 'Sign in'),
    message ? h('p', { class: 'error', role: 'alert' }, message) : null,
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    token.set(input.value.trim());
    void show();
  });
  main.replaceChildren(form);
  input.focus();
}

/** @param {unknown} error */
function failed(error) {
  if (error instanceof ApiError && error.status === 401) {
    token.clear();
    showLogin('The API token was refused: check it and sign in again.');
    return;
  }
  say(error instanceof Error ? error.message : String(error), true);
}

/** Draws the routed view (title, controls, body), or only its body when it is already on screen. */
async function show() {
  if (token.get() === null) {
    showLogin();
    return;
  }
  const { view, params } = route();
  const key = location.hash;
  const definition = views[view];
  if (!definition) return;
  try {
    if (shown?.key !== key) {
      const controls = definition.controls ? await definition.controls(params) : null;
      const body = h('div', { id: 'body' }, await definition.body(params));
      if (location.hash !== key) return;
      nav.hidden = false;
      logout.hidden = false;
      for (const link of nav.querySelectorAll('a')) {
        if (link.dataset.view === view) link.setAttribute('aria-current', 'page');
        else link.removeAttribute('aria-current');
      }
      main.replaceChildren(...[h('h1', {}, definition.title), controls, body].filter((node) => node !== null));
      shown = { key, body };
    } else {
      const content = await definition.body(params);
      if (shown.key === key) shown.body.replaceChildren(content);
    }
    say(`updated ${new Date().toLocaleTimeString()}`);
  } catch (error) {
    failed(error);
  }
}

async function refresh() {
  if (refreshing || shown === undefined || document.hidden) return;
  refreshing = true;
  try {
    await show();
  } finally {
    refreshing = false;
  }
}

logout.addEventListener('click', () => {
  token.clear();
  showLogin();
});
window.addEventListener('hashchange', () => void show());

const fragment = /^#token=([^&]+)/.exec(location.hash);
if (fragment?.[1] !== undefined) {
  token.set(decodeURIComponent(fragment[1]));
  // out of the address bar and the history at once
  history.replaceState(null, '', `${location.pathname}#/clusters`);
}
void show();
setInterval(() => void refresh(), REFRESH_MS);
