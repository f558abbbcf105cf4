// Same-origin requests of the console: the session cookie plus the page's CSRF token.

/** The CSRF token the server put in <meta name="csrf-token">. */
export function csrfToken(doc = document) {
  const meta = doc.querySelector('meta[name="csrf-token"]');
  return meta ? meta.getAttribute('content') : '';
}

/** GET a JSON document; throws an Error carrying the server's message on a non-2xx reply. */
export async function getJSON(url) {
  const response = await fetch(url, { credentials: 'same-origin', headers: { Accept: 'application/json' } });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || `${response.status} ${response.statusText}`);
  return body;
}

/**
 * Call `onData` with the JSON of `url` every `periodMs` while the tab is visible, one request at a
 * time; `onError` gets the Error of a failed one. Returns the interval id.
 */
export function pollJSON(url, periodMs, onData, onError) {
  let busy = false;
  const tick = async () => {
    if (busy || document.hidden) return;
    busy = true;
    try {
      onData(await getJSON(url));
    } catch (error) {
      onError(error);
    } finally {
      busy = false;
    }
  };
  return setInterval(tick, periodMs);
}

/** The message of an error reply: the JSON "error" field, else the status line. */
export function errorMessage(status, text) {
  try {
    const body = JSON.parse(text);
    if (body && typeof body.error === 'string') return body.error;
  } catch (_) { /* not JSON */ }
  if (status === 0) return 'the connection failed; check the network and try again';
  return `the server answered ${status}`;
}

/** An element with attributes and children (text is always set as text, never as HTML). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === 'text') node.textContent = String(value);
    else node.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}
