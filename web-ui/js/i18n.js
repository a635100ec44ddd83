// All UI text goes through t(): the tables in /i18n/{en,zh}.js map keys to
// strings with {placeholders}. The language is kept in localStorage; the
// first visit follows navigator.language.
import en from '../i18n/en.js';
import zh from '../i18n/zh.js';

const TABLES = { en, zh };
const KEY = 'camgate.lang';
let lang = initial();

function initial() {
  let saved = null;
  try {
    saved = localStorage.getItem(KEY);
  } catch {
    // Storage blocked: fall through to the browser's language.
  }
  if (saved && TABLES[saved]) return saved;
  const nav = (navigator.languages && navigator.languages[0]) || navigator.language || 'en';
  return nav.toLowerCase().startsWith('zh') ? 'zh' : 'en';
}

export function language() {
  return lang;
}

export function languages() {
  return Object.keys(TABLES);
}

export function setLanguage(l) {
  if (!TABLES[l]) return;
  lang = l;
  try {
    localStorage.setItem(KEY, l);
  } catch {
    // Not persisted; the choice still holds for this page.
  }
  document.documentElement.lang = l === 'zh' ? 'zh-CN' : 'en';
}

export function t(key, vars) {
  let s = TABLES[lang][key];
  if (s === undefined) s = en[key];
  if (s === undefined) return key;
  if (vars) s = s.replace(/\{(\w+)\}/g, (m, k) => (vars[k] !== undefined ? String(vars[k]) : m));
  return s;
}

/** Every key of the English table (for the consistency check in the tests). */
export function keys(l = 'en') {
  return Object.keys(TABLES[l] || {});
}

document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
