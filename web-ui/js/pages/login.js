// Sign in with a username and password, or with an API token (a fresh box
// only has the admin token printed at its first start).
import { api } from '../api.js';
import { t, language, languages, setLanguage } from '../i18n.js';
import { h, field, formError } from '../dom.js';

export function render(root, { onLogin, rerender }) {
  let mode = 'password';
  const box = h('div.login-card.card');
  const page = h('main.login-page', box);
  root.append(page);

  function draw() {
    box.replaceChildren();
    const user = h('input', { name: 'username', autocomplete: 'username', required: true, autofocus: true });
    const pass = h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true });
    const token = h('input', { name: 'token', type: 'password', autocomplete: 'off', required: true, spellcheck: 'false' });
    const submit = h('button.primary.wide', { type: 'submit' }, t('login.submit'));
    const form = h('form', { dataset: { testid: 'login-form' }, novalidate: true },
      mode === 'password'
        ? [field(t('login.username'), user), field(t('login.password'), pass)]
        : [field(t('login.token'), token, t('login.token_hint'))],
      submit);
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const body = mode === 'password'
        ? { username: user.value.trim(), password: pass.value }
        : { token: token.value.trim() };
      submit.disabled = true;
      formError(form, null);
      try {
        const s = await api('POST', '/auth/login', { body, quiet401: true });
        onLogin(s);
      } catch (err) {
        if (err.status === 401) err = { message: t('login.bad_credentials') };
        formError(form, err);
        submit.disabled = false;
      }
    });
    box.append(
      h('div.login-head',
        h('h1', h('span.logo', { 'aria-hidden': 'true' }, '◉'), ' camgate'),
        h('select.lang', {
          'aria-label': t('lang.label'),
          dataset: { testid: 'lang' },
          onchange: (e) => {
            setLanguage(e.target.value);
            rerender();
          },
        }, languages().map((l) => h('option', { value: l, selected: l === language() }, t(`lang.${l}`))))),
      h('p.muted', t('login.intro')),
      form,
      h('button.link', {
        type: 'button',
        dataset: { testid: 'login-mode' },
        onclick: () => {
          mode = mode === 'password' ? 'token' : 'password';
          draw();
        },
      }, mode === 'password' ? t('login.use_token') : t('login.use_password')));
  }
  draw();
}
