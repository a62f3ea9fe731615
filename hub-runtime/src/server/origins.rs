//! The `Origin` check of [`HubOptions::allowed_origins`](super::HubOptions::allowed_origins).
//!
//! Browsers send `Origin` with every cross-site request, including the
//! WebSocket upgrade, which no CORS preflight protects: without this check
//! a page on any site could open a hub connection with the cookies of a
//! user who is logged in (cross-site WebSocket hijacking). Requests without
//! `Origin` come from non-browser clients and are served.

use http::header;
use http::request::Parts;

/// Whether `parts` may be served under `allowed` (`None`: every origin).
/// Origins compare as ASCII case-insensitive strings, a trailing `/`
/// ignored (`https://app.example.com`).
pub(super) fn allowed(allowed: Option<&[String]>, parts: &Parts) -> bool {
    let Some(allowed) = allowed else {
        return true;
    };
    let mut origins = parts.headers.get_all(header::ORIGIN).iter().peekable();
    if origins.peek().is_none() {
        return true;
    }
    // Every Origin header present must be allowed (a request with two is
    // judged by the worse one).
    origins.all(|origin| {
        origin.to_str().is_ok_and(|origin| {
            let origin = origin.trim().trim_end_matches('/');
            allowed.iter().any(|entry| {
                entry
                    .trim()
                    .trim_end_matches('/')
                    .eq_ignore_ascii_case(origin)
            })
        })
    })
}

#[cfg(test)]
mod tests {
    use super::allowed;

    fn parts(origin: Option<&str>) -> http::request::Parts {
        let mut request = http::Request::get("/hub");
        if let Some(origin) = origin {
            request = request.header("Origin", origin);
        }
        request.body(()).unwrap().into_parts().0
    }

    #[test]
    fn origins_are_checked_only_when_configured_and_present() {
        let list = vec!["https://app.example.com".to_owned()];
        assert!(allowed(None, &parts(Some("https://evil.example"))));
        assert!(allowed(Some(&list), &parts(None)));
        assert!(allowed(
            Some(&list),
            &parts(Some("https://APP.example.com"))
        ));
        assert!(allowed(
            Some(&list),
            &parts(Some("https://app.example.com/"))
        ));
        assert!(!allowed(Some(&list), &parts(Some("https://evil.example"))));
        assert!(!allowed(Some(&list), &parts(Some("null"))));
        assert!(!allowed(Some(&[]), &parts(Some("https://app.example.com"))));
    }
}
