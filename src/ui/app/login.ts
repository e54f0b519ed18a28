/**
 * The token prompt: shown when the node answers 401 (it has a token file and
 * this tab has no token, or one it refuses). The token goes to
 * sessionStorage (api.ts) and is sent as `Authorization: Bearer` from the next
 * call on; the form never submits (so the token never lands in a URL or the
 * browser's history), and the field is a password field without autocomplete.
 */
import { useState } from 'preact/hooks';
import { storeToken } from './api.js';
import { html } from './html.js';

export interface LoginProps {
  /** Whether a token was in use when the node answered 401 (it was refused), and the node's message. */
  readonly refused: boolean;
  readonly message: string;
  /** Called once a token is stored. */
  readonly done: () => void;
}

export function LoginPrompt({ refused, message, done }: LoginProps) {
  const [token, setToken] = useState('');
  const submit = (event: Event): void => {
    event.preventDefault();
    const value = token.trim();
    if (value.length === 0) return;
    storeToken(value);
    setToken('');
    done();
  };
  return html`
    <section class="wide login" data-testid="login">
      <h2>This node needs a token</h2>
      <p class=${refused ? 'error' : 'muted'} data-testid="login-reason">${refused ? `The token was refused: ${message}` : 'It has a token file: enter a token (read is enough to watch; write to change keys).'}</p>
      <form class="row" onSubmit=${submit} autocomplete="off">
        <input type="password" name="token" aria-label="token" placeholder="token" autocomplete="off" value=${token} onInput=${(event: Event) => setToken((event.target as HTMLInputElement).value)} />
        <button class="primary" type="submit">Use token</button>
      </form>
      <p class="muted">Kept in this tab only (sessionStorage) and sent as <code>Authorization: Bearer</code>.</p>
    </section>
  `;
}

/** Forgets the tab's token and starts over (the page asks again if the node needs one). */
export function forgetToken(): void {
  storeToken(null);
  location.reload();
}
