// The page chrome every page shares: header (logo, search, "Go live", sign-in state) and the sidebar.
// Pages are static HTML with empty <header id="app-header"> and <nav id="app-nav">; this fills them.

import { h, icon } from './dom.js';
import { claims } from './session.js';
import { initial } from './format.js';

const NAV = [
  { id: 'home', label: 'Home', href: 'index.html', icon: 'home' },
  { id: 'live', label: 'Live', href: 'index.html#live', icon: 'live' },
  { id: 'library', label: 'Library', href: 'library.html', icon: 'library' },
  { id: 'studio', label: 'Studio', href: 'studio.html', icon: 'studio' },
];

/** Render the header and sidebar; `current` is the nav id of this page. Returns the search input. */
export function renderShell(current) {
  const header = document.getElementById('app-header');
  const query = new URLSearchParams(location.search).get('q') || '';
  const search = h('input', {
    type: 'search', name: 'q', id: 'search', placeholder: 'Search streams and videos', value: query,
    'aria-label': 'Search by title or channel', autocomplete: 'off',
  });
  const user = claims();
  header.replaceChildren(
    h('a', { class: 'logo', href: 'index.html', 'aria-label': 'CaptureStream home' },
      h('span', { class: 'logo-mark', 'aria-hidden': 'true' }), h('span', { class: 'logo-text' }, 'CaptureStream')),
    h('div', { class: 'search', role: 'search' },
      h('form', { action: 'index.html', method: 'get' }, search,
        h('button', { class: 'button', type: 'submit', 'aria-label': 'Search' }, icon('search')))),
    h('div', { class: 'header-actions' },
      h('a', { class: 'button live', href: 'studio.html#go-live' }, icon('studio'), h('span', { class: 'button-label' }, 'Go live')),
      user
        ? h('a', { class: 'avatar', href: 'studio.html', title: `Signed in as ${user.name || user.sub}`,
          'aria-label': `Signed in as ${user.name || user.sub}` }, initial(user.name || user.sub))
        : h('a', { class: 'button', href: 'studio.html#sign-in' }, icon('person'), h('span', { class: 'button-label' }, 'Sign in'))),
  );
  const nav = document.getElementById('app-nav');
  nav.replaceChildren(h('ul', {}, NAV.map((item) => h('li', {},
    h('a', { href: item.href, 'aria-current': item.id === current ? 'page' : null },
      icon(item.icon), h('span', { class: 'nav-label' }, item.label))))));
  return search;
}
