// The page's entry: sign in with a pasted token (kept in sessionStorage), then
// the notifications for everyone and the system views for admins; sign out
// forgets the token and closes the socket. The server checks every call; what the
// token's payload says is used here only to choose what to show.

import { Admin } from './admin.js';
import { createApi } from './api.js';
import { Notifications } from './notifications.js';
import * as session from './session.js';

const $ = (sel) => document.querySelector(sel);

let current = null;

/** Says `text` to screen readers (the polite live region). */
function announce(text) {
  const region = $('#announcer');
  region.textContent = '';
  // A change the next frame is announced even when the text repeats.
  requestAnimationFrame(() => {
    region.textContent = text;
  });
}

function showSignIn(message) {
  $('#sign-in').hidden = false;
  $('#who').hidden = true;
  $('#sign-in-error').textContent = message || '';
  $('#token').value = '';
}

/** Refuses a token the server does not accept, before showing anything. */
async function check(api) {
  try {
    await api.get('/api/v1/notifications', { limit: 1 });
  } catch (e) {
    // A server without the notifications routes still tells good tokens from bad.
    if (e.status !== 404) throw e;
    await api.get('/api/v1/events', { limit: 1 });
  }
}

function signOut(message) {
  if (current) {
    current.notifications.stop();
    current.admin?.stop();
    clearTimeout(current.expiry);
    current = null;
  }
  session.clear();
  showSignIn(message);
  $('#token').focus();
}

async function signIn(token, { restored = false } = {}) {
  let claims;
  try {
    claims = session.claims(token);
  } catch (e) {
    if (restored) session.clear();
    showSignIn(restored ? '' : e.message);
    return false;
  }
  const api = createApi(token, (e) => signOut(`The server refused the token: ${e.message}`));
  try {
    await check(api);
  } catch (e) {
    if (e.status !== 401) showSignIn(`Cannot sign in: ${e.message}`);
    return false;
  }
  session.save(token);
  $('#sign-in').hidden = true;
  $('#who').hidden = false;
  $('#who-name').textContent = claims.sub;
  $('#who-role').textContent = claims.admin ? ' (admin)' : '';
  $('#sign-in-error').textContent = '';
  const notifications = new Notifications(api, $('#notifications'), announce);
  const admin = claims.admin ? new Admin(api, $('#admin')) : null;
  const left = claims.exp * 1000 - Date.now();
  current = {
    notifications,
    admin,
    // setTimeout's limit is about 24.8 days; a longer token is checked on reload.
    expiry: left < 2 ** 31 - 1 ? setTimeout(() => signOut('Signed out: the token has expired.'), left) : null,
  };
  notifications.start();
  admin?.start();
  return true;
}

$('#sign-in-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const token = session.clean($('#token').value);
  if (!token) {
    $('#sign-in-error').textContent = 'Paste a token first.';
    $('#token').focus();
    return;
  }
  const button = ev.submitter || $('#sign-in-form button');
  button.disabled = true;
  const ok = await signIn(token);
  button.disabled = false;
  if (ok) $('#page-title').focus();
  else $('#token').focus();
});

$('#sign-out').addEventListener('click', () => signOut('Signed out.'));

const stored = session.load();
if (stored) signIn(stored, { restored: true });
else showSignIn('');
