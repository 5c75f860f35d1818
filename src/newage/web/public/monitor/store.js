// Shared page state with change notifications. Views subscribe to the keys
// they show; loaders (main.js) put what the server says or pushes.

const values = new Map();
const listeners = new Map();

export function get(key) {
  return values.get(key);
}

export function set(key, value) {
  values.set(key, value);
  for (const fn of listeners.get(key) || []) {
    try { fn(value); } catch (err) { console.error(`listener for ${key} failed`, err); }
  }
}

/** Call fn(value) now (when set) and on every change; returns an unsubscribe. */
export function watch(key, fn, { now = true } = {}) {
  if (!listeners.has(key)) listeners.set(key, new Set());
  listeners.get(key).add(fn);
  if (now && values.has(key)) fn(values.get(key));
  return () => listeners.get(key).delete(fn);
}
