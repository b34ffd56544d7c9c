// Prompt history (the last prompts submitted, newest first) and saved styles (prompt and negative snippets
// applied on top of what is typed, as in A1111), both kept in localStorage.
import { KEYS, loadJSON, saveJSON } from "./storage";

export const PROMPT_HISTORY_SIZE = 50;

export interface Style {
  name: string;
  prompt: string;
  negative_prompt: string;
}

export function loadPromptHistory(): string[] {
  const saved = loadJSON<unknown>(KEYS.promptHistory, []);
  return Array.isArray(saved) ? saved.filter((p): p is string => typeof p === "string") : [];
}

/** `prompt` first, without its older copies, at most PROMPT_HISTORY_SIZE kept. */
export function rememberPrompt(history: string[], prompt: string): string[] {
  const text = prompt.trim();
  if (!text) return history;
  const next = [text, ...history.filter((p) => p !== text)].slice(0, PROMPT_HISTORY_SIZE);
  saveJSON(KEYS.promptHistory, next);
  return next;
}

export function loadStyles(): Style[] {
  const saved = loadJSON<unknown>(KEYS.styles, []);
  if (!Array.isArray(saved)) return [];
  return saved.filter(
    (s): s is Style => typeof s === "object" && s !== null && typeof s.name === "string" && typeof s.prompt === "string" && typeof s.negative_prompt === "string",
  );
}

/** Saves (or replaces, by name) one style; returns the new list sorted by name. */
export function saveStyle(styles: Style[], style: Style): Style[] {
  const next = [...styles.filter((s) => s.name !== style.name), style].sort((a, b) => a.name.localeCompare(b.name));
  saveJSON(KEYS.styles, next);
  return next;
}

export function deleteStyle(styles: Style[], name: string): Style[] {
  const next = styles.filter((s) => s.name !== name);
  saveJSON(KEYS.styles, next);
  return next;
}

/**
 * A style on top of a prompt. A snippet with `{prompt}` wraps the prompt (A1111's placeholder); otherwise it
 * is appended after a comma. An empty snippet leaves the text as it was.
 */
export function applySnippet(text: string, snippet: string): string {
  if (!snippet.trim()) return text;
  if (snippet.includes("{prompt}")) return snippet.replace("{prompt}", text);
  return text.trim() ? `${text.replace(/[\s,]+$/, "")}, ${snippet}` : snippet;
}
