// Small DOM helpers shared by the panels.

export function byId(id) {
  const element = document.getElementById(id);
  if (!element) throw new Error(`no element #${id}`);
  return element;
}

/** Creates an element with a class and text. */
export function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/**
 * A panel's status line (aria-live polite) and error line (role=alert). `busy(promise,
 * message)` shows the message while the promise runs, and the error's sentence if it fails.
 */
export function feedback(statusId, errorId) {
  const status = byId(statusId);
  const error = byId(errorId);
  return {
    status(text) {
      status.textContent = text || "";
    },
    error(text) {
      error.textContent = text || "";
    },
    clear() {
      status.textContent = "";
      error.textContent = "";
    },
    fail(reason) {
      status.textContent = "";
      error.textContent = reason instanceof Error ? reason.message : String(reason);
    },
  };
}

export function percent(probability) {
  return `${(probability * 100).toFixed(1)} %`;
}
