// Everything the browser remembers lives in localStorage under one prefix, so a reload keeps the user's
// work and one place knows every key.
const PREFIX = "ablerefusal.";

export const KEYS = {
  params: "params",
  apiKey: "apiKey",
  theme: "theme",
  lastSeed: "lastSeed",
  activeJob: "activeJob",
  promptHistory: "promptHistory",
  styles: "styles",
  // The Image tab: its form, its last job and its input image (the upload's id, size and URL).
  imageParams: "imageParams",
  activeImageJob: "activeImageJob",
  imageInput: "imageInput",
} as const;

type Key = (typeof KEYS)[keyof typeof KEYS];

export function loadJSON<T>(key: Key, fallback: T): T {
  if (typeof window === "undefined") return fallback;
  const raw = window.localStorage.getItem(PREFIX + key);
  if (raw === null) return fallback;
  try {
    return JSON.parse(raw) as T;
  } catch {
    // A value written by an older build that no longer parses is worth less than a working page.
    return fallback;
  }
}

export function saveJSON(key: Key, value: unknown): void {
  if (typeof window === "undefined") return;
  if (value === null || value === undefined) window.localStorage.removeItem(PREFIX + key);
  else window.localStorage.setItem(PREFIX + key, JSON.stringify(value));
}

export function getApiKey(): string {
  return loadJSON<string>(KEYS.apiKey, "");
}

export function setApiKey(key: string): void {
  saveJSON(KEYS.apiKey, key.trim() === "" ? null : key.trim());
}
