/** Python string semantics that prompt formats depend on, where JavaScript's differ. */

// Characters for which Python's str.isspace() is true. JS trim() differs: it also strips U+FEFF and
// keeps U+001C..U+001F and U+0085, which Python strips.
const PY_SPACE =
  '\\t\\n\\v\\f\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const LEADING = new RegExp(`^[${PY_SPACE}]+`);
const TRAILING = new RegExp(`[${PY_SPACE}]+$`);

/** Python's `str.strip()` with no arguments. */
export function pyStrip(s: string): string {
  return s.replace(LEADING, '').replace(TRAILING, '');
}
