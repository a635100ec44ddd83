// camgate admin UI: the shell (header, navigation, language, session) and
// the hash router. Pages live in js/pages/*.js and export
// `render(root, params)`, which may return a cleanup function called when
// the page is left (timers, players).
import { api, can, onUnauthorized, session, setSession } from './js/api.js';
import { t, language, languages, setLanguage } from './js/i18n.js';
import { h, clear, toast, errorText } from './js/dom.js';
import * as login from './js/pages/login.js';
import * as dashboard from './js/pages/dashboard.js';
import * as devices from './js/pages/devices.js';
import * as device from './js/pages/device.js';
import * as live from './js/pages/live.js';
import * as sources from './js/pages/sources.js';
import * as users from './js/pages/users.js';
import * as settings from './js/pages/settings.js';
import * as events from './js/pages/events.js';
import * as webhooks from './js/pages/webhooks.js';

// Route → page and the least role that may open it (the server checks
// every call anyway; this only keeps viewers out of pages they cannot use).
const ROUTES = [
  { path: /^dashboard$/, page: dashboard, nav: 'dashboard', role: 'viewer' },
  { path: /^devices$/, page: devices, nav: 'devices', role: 'viewer' },
  { path: /^devices\/([^/]+)$/, page: device, nav: 'devices', role: 'viewer' },
  { path: /^live$/, page: live, nav: 'live', role: 'viewer' },
  { path: /^sources$/, page: sources, nav: 'sources', role: 'viewer' },
  { path: /^users$/, page: users, nav: 'users', role: 'admin' },
  { path: /^settings$/, page: settings, nav: 'settings', role: 'viewer' },
  { path: /^events$/, page: events, nav: 'events', role: 'viewer' },
  { path: /^webhooks$/, page: webhooks, nav: 'webhooks', role: 'admin' },
];

const NAV = [
  ['dashboard', 'viewer'],
  ['devices', 'viewer'],
  ['live', 'viewer'],
  ['sources', 'viewer'],
  ['events', 'viewer'],
  ['users', 'admin'],
  ['webhooks', 'admin'],
  ['settings', 'viewer'],
];

const root = document.getElementById('app');
let cleanup = null;

function currentPath() {
  return decodeURIComponent(location.hash.replace(/^#\/?/, '')) || '';
}

export function navigate(path) {
  if (currentPath() === path) render();
  else location.hash = `#/${path}`;
}

function header(active) {
  const s = session();
  const menuId = 'main-nav';
  const nav = h('nav.main-nav', { id: menuId, 'aria-label': t('nav.label') },
    NAV.filter(([, role]) => can(role)).map(([name]) => h('a', {
      href: `#/${name}`,
      class: name === active ? 'active' : null,
      'aria-current': name === active ? 'page' : null,
      dataset: { nav: name },
      onclick: () => nav.classList.remove('open'),
    }, t(`nav.${name}`))));
  const langSel = h('select.lang', {
    'aria-label': t('lang.label'),
    dataset: { testid: 'lang' },
    onchange: (e) => {
      setLanguage(e.target.value);
      render();
    },
  }, languages().map((l) => h('option', { value: l, selected: l === language() }, t(`lang.${l}`))));
  return h('header.topbar',
    h('a.brand', { href: '#/dashboard' }, h('span.logo', { 'aria-hidden': 'true' }, '◉'), 'camgate'),
    h('button.icon.menu-toggle', {
      type: 'button',
      'aria-label': t('nav.menu'),
      'aria-controls': menuId,
      onclick: () => nav.classList.toggle('open'),
    }, '☰'),
    nav,
    h('div.user-box',
      langSel,
      h('span.who', { dataset: { testid: 'who' } }, s.username, ' ', h('span.role', t(`role.${s.role}`))),
      h('button.small', { type: 'button', dataset: { testid: 'logout' }, onclick: logout }, t('nav.logout'))));
}

async function logout() {
  try {
    await api('POST', '/auth/logout');
  } catch (e) {
    toast(errorText(e), 'error');
  }
  setSession(null);
  render();
}

function notAllowed(main) {
  main.append(h('section.card.not-allowed', { dataset: { testid: 'not-allowed' } },
    h('h1', t('denied.title')),
    h('p', t('denied.text')),
    h('a.button', { href: '#/dashboard' }, t('denied.back'))));
}

async function render() {
  if (cleanup) {
    try {
      cleanup();
    } catch (e) {
      console.error(e);
    }
    cleanup = null;
  }
  clear(root);
  document.title = 'camgate';
  if (!session()) {
    cleanup = login.render(root, {
      onLogin: (s) => {
        setSession(s);
        if (!currentPath() || currentPath() === 'login') navigate('dashboard');
        else render();
      },
      rerender: render,
    });
    return;
  }
  const path = currentPath();
  if (!path || path === 'login') {
    navigate('dashboard');
    return;
  }
  const route = ROUTES.find((r) => r.path.test(path));
  const main = h('main.content', { id: 'content' });
  root.append(header(route ? route.nav : null), main);
  if (!route) {
    main.append(h('section.card', h('h1', t('notfound.title')), h('p', t('notfound.text', { path }))));
    return;
  }
  if (!can(route.role)) {
    notAllowed(main);
    return;
  }
  const params = path.match(route.path).slice(1);
  document.title = `${t(`nav.${route.nav}`)} · camgate`;
  try {
    cleanup = route.page.render(main, params, { navigate }) || null;
  } catch (e) {
    console.error(e);
    main.append(h('p.form-error', errorText(e)));
  }
}

onUnauthorized(() => {
  if (session()) {
    setSession(null);
    toast(t('login.expired'), 'error');
    render();
  }
});

window.addEventListener('hashchange', render);

async function start() {
  try {
    setSession(await api('GET', '/auth/session', { quiet401: true }));
  } catch {
    setSession(null);
  }
  render();
}

start();
