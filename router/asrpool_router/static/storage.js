// What the pages keep in this browser between visits. One key entry serves the recorder and
// the dashboard (each links to the other); the recorder also keeps its language.
// Storage may be refused (private mode, disabled by policy): the pages then forget, softly.

export const KEY_STORAGE = "asrpool.apiKey";
export const LANGUAGE_STORAGE = "asrpool.language";

// The browser's localStorage, or null where reading it throws.
export function browserStorage() {
  try {
    return window.localStorage;
  } catch {
    return null;
  }
}

// Named values in a Storage (or in none): reads answer null and writes do nothing when the
// storage is missing or refuses.
export class Remembered {
  constructor(storage) {
    this.storage = storage;
  }

  get(name) {
    try {
      return this.storage.getItem(name);
    } catch {
      return null;
    }
  }

  // An empty value removes the entry, unless keepEmpty (an empty choice is a choice too).
  set(name, value, { keepEmpty = false } = {}) {
    try {
      if (value || keepEmpty) this.storage.setItem(name, value);
      else this.storage.removeItem(name);
    } catch {
      // storage disabled (private mode): the page still works, it just forgets
    }
  }
}
