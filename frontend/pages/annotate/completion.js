/**
 * The completion handshake after a successful submit. The page always tells
 * the embedding page first (`postMessage` of `{type: "looplabel:complete",
 * code, assignment_id}`), then does what the platform asks:
 * - `post_message` (generic hosts, Appen): nothing more; the code is shown;
 * - `redirect` (Prolific): the top window goes to the completion URL;
 * - `form_post` (MTurk, legacy): a form with the fields is POSTed to MTurk.
 *
 * @module pages/annotate/completion
 */

/** `type` of the completion message sent to the parent window. */
export const COMPLETION_MESSAGE = "looplabel:complete";
/** Milliseconds the code stays on screen before a redirect or form post. */
export const HANDOFF_DELAY_MS = 900;

/**
 * Post the completion to the embedding window, when there is one.
 *
 * @param {{code: string}} completion Server completion.
 * @param {number} assignmentId
 * @param {Window} [win=window]
 * @returns {boolean} Whether a message was posted.
 */
export function notifyParent(completion, assignmentId, win = window) {
  if (!win.parent || win.parent === win) return false;
  // "*": the host's origin is not known here; the message holds nothing secret
  // (the code is what the host is meant to receive).
  win.parent.postMessage({ type: COMPLETION_MESSAGE, code: completion.code, assignment_id: assignmentId }, "*");
  return true;
}

/**
 * Navigate the top window (or this one when the top cannot be reached).
 *
 * @param {string} url
 * @param {Window} [win=window]
 */
export function navigateTop(url, win = window) {
  try {
    win.top.location.href = url;
  } catch {
    win.location.href = url;
  }
}

/**
 * POST `fields` to `url` in the top window (MTurk's externalSubmit).
 *
 * @param {string} url
 * @param {Record<string, string>} fields
 * @param {Document} [doc=document]
 */
export function postForm(url, fields, doc = document) {
  const form = doc.createElement("form");
  form.method = "POST";
  form.action = url;
  form.target = window.top === window ? "_self" : "_top";
  form.hidden = true;
  for (const [name, value] of Object.entries(fields || {})) {
    const input = doc.createElement("input");
    input.type = "hidden";
    input.name = name;
    input.value = String(value);
    form.appendChild(input);
  }
  doc.body.appendChild(form);
  form.submit();
}

/**
 * Perform the platform's completion.
 *
 * @param {{kind: string, code: string, url?: string, fields?: object, show_code?: boolean}} completion
 * @param {number} assignmentId
 * @param {(view: {title: string, text: string, code: string|null, link?: {href: string, label: string}}) => void} show
 *   Shows the finished screen.
 */
export function performCompletion(completion, assignmentId, show) {
  notifyParent(completion, assignmentId);
  if (completion.kind === "redirect" && completion.url) {
    show({
      title: "Thank you, your work is submitted",
      text: "Taking you back to the study to record your completion…",
      code: completion.code,
      link: { href: completion.url, label: "Continue if nothing happens" },
    });
    setTimeout(() => navigateTop(completion.url), HANDOFF_DELAY_MS);
  } else if (completion.kind === "form_post" && completion.url) {
    show({ title: "Thank you, your work is submitted", text: "Sending the completion to Mechanical Turk…", code: completion.code });
    setTimeout(() => postForm(completion.url, completion.fields), HANDOFF_DELAY_MS);
  } else {
    show({
      title: "Thank you, your work is submitted",
      text: completion.show_code ? "Your completion code (copy it into the platform if it asks):" : "You may close this window.",
      code: completion.show_code ? completion.code : null,
    });
  }
}
