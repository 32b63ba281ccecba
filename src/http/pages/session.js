// Signing in and out, shared by every page: a token kept in sessionStorage
// signs the page in; otherwise the embedded server's dev tokens are offered
// in a picker, or a token can be pasted.

import { claimsOf, clearToken, devTokens, getToken, isExpired, setToken, takeNotice } from './api.js';
import { errorSlot, h, replace, showError, clearErrors } from './dom.js';

/** Who a token's claims say the caller is, for display. */
export function describe(claims) {
  if (!claims) return { role: 'unknown', who: 'unknown token' };
  const role = typeof claims.role === 'string' ? claims.role : 'unknown';
  const who = claims.email || (role === 'authenticated' && claims.sub ? `user ${String(claims.sub).slice(0, 8)}` : role);
  return { role, who };
}

/**
 * Signs the page in and shows the app. `page.main` is the element shown
 * once signed in; `start(session)` runs with `{token, claims, role, who}`.
 */
export async function boot(start) {
  const app = document.getElementById('app');
  const signin = document.getElementById('signin');
  let token = getToken();
  let claims = claimsOf(token);
  let notice = takeNotice();
  if (token && isExpired(claims)) {
    clearToken();
    token = null;
    notice = 'Your token has expired: sign in again.';
  }
  if (!token) {
    app.hidden = true;
    token = await signInForm(signin, notice);
    claims = claimsOf(token);
  }
  signin.hidden = true;
  signin.replaceChildren();
  app.hidden = false;
  const session = { token, claims, ...describe(claims) };
  showSession(session);
  await start(session);
}

function showSession(session) {
  const place = document.getElementById('session');
  if (!place) return;
  replace(
    place,
    h('span', {}, 'Signed in as ', h('strong', {}, session.who), ` (${session.role})`),
    h(
      'button',
      {
        type: 'button',
        id: 'sign-out',
        class: 'btn-small',
        onclick: () => {
          clearToken();
          location.reload();
        },
      },
      'Sign out',
    ),
  );
}

/** Shows the sign-in screen and resolves to the chosen token. */
async function signInForm(place, notice) {
  const tokens = await devTokens();
  return new Promise((resolve) => {
    const done = (token) => {
      setToken(token);
      resolve(token.trim());
    };
    const parts = [h('h1', {}, 'Sign in'), h('p', { class: 'muted' }, 'widget-data answers with the rows your token may read.')];
    if (notice) parts.push(h('p', { class: 'notice warn', role: 'status' }, notice));
    if (tokens) {
      const preferred = tokens.find((t) => t.role === 'authenticated') || tokens[0];
      const picker = h(
        'select',
        { id: 'token-picker', name: 'token' },
        tokens.map((t) => h('option', { value: t.token, selected: t === preferred }, `${t.name} (${t.role})`)),
      );
      parts.push(
        h(
          'form',
          {
            id: 'dev-signin',
            onsubmit: (e) => {
              e.preventDefault();
              done(picker.value);
            },
          },
          h('div', { class: 'field' }, h('label', { for: 'token-picker' }, 'Dev token'), picker, h('p', { class: 'field-hint' }, 'The tokens the embedded server printed at start.')),
          h('div', {}, h('button', { type: 'submit', class: 'btn-primary' }, 'Sign in')),
        ),
      );
    }
    const pasteForm = pasteTokenForm(done);
    parts.push(tokens ? h('details', {}, h('summary', {}, 'Paste a token instead'), pasteForm) : pasteForm);
    replace(place, h('div', { class: 'card signin' }, parts));
    place.hidden = false;
    const first = place.querySelector('select, textarea');
    if (first) first.focus();
  });
}

function pasteTokenForm(done) {
  const form = h('form', { id: 'paste-signin', novalidate: true });
  const input = h('textarea', { id: 'token-input', name: 'token', rows: '4', autocomplete: 'off', spellcheck: 'false' });
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    clearErrors(form);
    const token = input.value.trim();
    const claims = claimsOf(token);
    if (!claims) {
      showError(form, 'token', 'This is not a JWT: three base64url parts separated by dots.');
      return;
    }
    if (isExpired(claims)) {
      showError(form, 'token', 'This token has expired.');
      return;
    }
    done(token);
  });
  return replace(
    form,
    h(
      'div',
      { class: 'field' },
      h('label', { for: 'token-input' }, 'Access token (JWT)'),
      input,
      h('p', { class: 'field-hint' }, 'Kept in this tab only (sessionStorage).'),
      errorSlot(form, 'token'),
    ),
    h('div', {}, h('button', { type: 'submit', class: 'btn-primary' }, 'Sign in with this token')),
  );
}
