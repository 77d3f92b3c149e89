//! `Accept` read properly (RFC 9110 §12.5.1): media ranges, their `q`
//! weights, `q=0` as "not this", the most specific range deciding. It
//! picks between the two kinds of answer the server has: a page for a
//! browser, JSON for everyone else (curl's `*/*` included).

use hyper::header::{self, HeaderMap};

/// Whether the client prefers an HTML page: it names `text/html` (or
/// `text/*`) with a weight above 0, and at least as high as JSON's (a tie
/// goes to JSON only when JSON is named explicitly).
pub fn wants_html(headers: &HeaderMap) -> bool {
    let html = quality(headers, "text", "html", false).map(|(weight, _)| weight);
    let json = quality(headers, "application", "json", true);
    match html {
        Some(html) if html > 0.0 => match json {
            Some((weight, explicit)) => html > weight || (html == weight && !explicit),
            None => true,
        },
        _ => false,
    }
}

/// Whether the client names JSON (`application/json`, or
/// `application/*`) with a weight above 0 and does not prefer a page.
pub fn wants_json(headers: &HeaderMap) -> bool {
    !wants_html(headers) && quality(headers, "application", "json", false).is_some_and(|q| q.0 > 0.0)
}

/// The weight the most specific matching range gives `kind/sub`, and
/// whether that range names it exactly; `*/*` counts only when `any` is
/// set. `None` when no range matches.
fn quality(headers: &HeaderMap, kind: &str, sub: &str, any: bool) -> Option<(f32, bool)> {
    let mut best: Option<(u8, f32)> = None;
    for value in headers.get_all(header::ACCEPT).iter().filter_map(|value| value.to_str().ok()) {
        for range in value.split(',') {
            let mut parts = range.split(';');
            let Some((range_kind, range_sub)) = parts.next().and_then(|media| media.trim().split_once('/'))
            else {
                continue;
            };
            let specificity = match (range_kind.trim(), range_sub.trim()) {
                (k, s) if k.eq_ignore_ascii_case(kind) && s.eq_ignore_ascii_case(sub) => 2,
                (k, "*") if k.eq_ignore_ascii_case(kind) => 1,
                ("*", "*") if any => 0,
                _ => continue,
            };
            let weight = parts
                .filter_map(|param| param.split_once('='))
                .find(|(name, _)| name.trim().eq_ignore_ascii_case("q"))
                .map_or(Some(1.0), |(_, q)| q.trim().parse::<f32>().ok().filter(|q| (0.0..=1.0).contains(q)));
            let Some(weight) = weight else { continue };
            if best.is_none_or(|(seen, _)| specificity > seen) {
                best = Some((specificity, weight));
            }
        }
    }
    best.map(|(specificity, weight)| (weight, specificity == 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, value.parse().unwrap());
        headers
    }

    #[test]
    fn browsers_get_pages_and_everyone_else_json() {
        let firefox = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
        assert!(wants_html(&accept(firefox)));
        assert!(wants_html(&accept("text/*")));
        assert!(!wants_html(&accept("*/*")), "curl");
        assert!(!wants_html(&HeaderMap::new()));
        assert!(!wants_html(&accept("application/json")));
        assert!(wants_json(&accept("application/json")));
        assert!(!wants_json(&accept("*/*")));
    }

    #[test]
    fn weights_are_read_not_substrings() {
        assert!(!wants_html(&accept("text/html;q=0, application/json")), "q=0 means not this");
        assert!(!wants_html(&accept("text/html;q=0")));
        assert!(!wants_html(&accept("application/json, text/html;q=0.5")));
        assert!(!wants_html(&accept("application/json, text/html")), "a tie goes to the named JSON");
        assert!(wants_html(&accept("application/json;q=0.5, text/html")));
        assert!(!wants_html(&accept("text/htmlx, application/xhtml+xml")), "not a substring match");
        assert!(!wants_json(&accept("application/json;q=0")));
        assert!(!wants_json(&accept("application/jsonp")));
        assert!(wants_html(&accept("TEXT/HTML ; Q=1")));
        assert!(!wants_html(&accept("text/html;q=2")), "an invalid weight is ignored");
    }
}
