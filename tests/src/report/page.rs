//! The self-contained HTML page every HTML report is: one style sheet, no scripts, no
//! external files.

use std::fmt::Write as _;

/// Escapes text for HTML.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A whole page: `title` as the title and first heading, then `body` (HTML).
pub fn page(title: &str, body: &str) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title>\
         <style>body{{font-family:sans-serif;margin:1.5em;max-width:1150px}}table{{border-collapse:collapse;margin:.5em 0}}\
         td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}td:first-child,th:first-child{{text-align:left}}\
         .fail{{color:#b00;font-weight:bold}}.ok{{color:#080}}pre{{background:#f4f4f4;padding:.5em;white-space:pre-wrap}}</style>\
         </head><body>\n<h1>{t}</h1>\n{body}\n</body></html>\n",
        t = esc(title)
    );
    h
}
