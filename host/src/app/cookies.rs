//! A guest's `Set-Cookie` headers against the host's own session cookie: the host drops every one that a browser would store as that cookie.
//!
//! The session cookie (`sessions::COOKIE_NAME`) is the host's: a guest that
//! could set it could fix a visitor's session to one it knows (session
//! fixation) or clear it and sign the visitor out of every app on the host
//! name. Which `Set-Cookie` values count as that cookie follows how a browser
//! parses them (RFC 6265bis, "The Set-Cookie Header Field", and "The Cookie
//! Header Field" for how a stored cookie is sent back):
//!
//! - The cookie's name is what comes before the first `=` of the part before
//!   the first `;`, with spaces and tabs around it removed. The attributes
//!   after the `;` (`Path`, `Domain`, `Max-Age`, …) never change the name:
//!   a cookie of the same name with another `Path` or `Domain` is stored
//!   beside the host's and sent with it, and the host could read the guest's.
//! - Names are compared exactly, as browsers do: `WASMHOST_SESSION` and
//!   `__Host-wasmhost_session` are other cookies, which the host never reads
//!   as its own, so they are left to the guest.
//! - A part with an empty name (`=wasmhost_session=x`) makes a nameless
//!   cookie, which Chromium and Firefox send back as its value alone:
//!   `Cookie: wasmhost_session=x`. That is the host's cookie too.
//! - A part without any `=` (`wasmhost_session`) is a nameless cookie to
//!   RFC 6265bis, but WebKit's cookie stores take it as a name with an empty
//!   value, which would replace the host's cookie: it is dropped too.
//!
//! The last step asks the sessions layer whether the name the browser would
//! send back is the session cookie's ([`sessions::is_cookie_name`]), so
//! that what is dropped here and what the host reads never disagree (the
//! host trims any whitespace, a browser only spaces and tabs: the wider of
//! the two is dropped).

use crate::sessions;

/// Whether this `Set-Cookie` value would set, replace, clear or shadow the
/// host's session cookie in a browser.
pub fn sets_session_cookie(set_cookie: &str) -> bool {
    let pair = set_cookie.split(';').next().unwrap_or_default();
    let (name, value) = match pair.split_once('=') {
        Some((name, value)) => (trim_wsp(name), trim_wsp(value)),
        None => ("", trim_wsp(pair)),
    };
    let name_sent_back = if name.is_empty() {
        // Nameless: sent back as its value alone, whose name is what comes
        // before its own `=`, or all of it (WebKit: a name, no value).
        value.split_once('=').map_or(value, |(name, _)| name)
    } else {
        name
    };
    sessions::is_cookie_name(name_sent_back)
}

/// Removes from `headers` every `Set-Cookie` that [`sets_session_cookie`];
/// returns how many were removed.
pub fn drop_session_cookies(headers: &mut Vec<(String, String)>) -> usize {
    let before = headers.len();
    headers.retain(|(name, value)| {
        !(name.eq_ignore_ascii_case("set-cookie") && sets_session_cookie(value))
    });
    before - headers.len()
}

/// Removes leading and trailing spaces and tabs (RFC 6265bis `WSP`).
fn trim_wsp(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_cookie_values_naming_the_session_cookie_are_recognised() {
        let table = [
            ("wasmhost_session=abc", true),
            ("wasmhost_session=abc; Path=/; HttpOnly; SameSite=Lax", true),
            // Clearing it signs the visitor out of every app.
            ("wasmhost_session=; Max-Age=0", true),
            ("wasmhost_session=x; Domain=example.com; Path=/app", true),
            // No `=`: WebKit takes it as the name with an empty value.
            ("wasmhost_session", true),
            ("wasmhost_session; Path=/", true),
            // Spaces and tabs around the name are not part of it.
            (" wasmhost_session =x", true),
            ("\twasmhost_session\t=x; Path=/", true),
            // Whitespace a browser keeps but the host trims when reading.
            ("\u{a0}wasmhost_session=x", true),
            // A nameless cookie is sent back as its value.
            ("=wasmhost_session=x", true),
            (" = wasmhost_session=x; Path=/", true),
            ("=wasmhost_session", true),
            ("theme", false),
            ("=theme=dark", false),
            // Other names, in a browser and to the host.
            ("WASMHOST_SESSION=x", false),
            ("Wasmhost_Session=x", false),
            ("__Host-wasmhost_session=x; Path=/; Secure", false),
            ("__Secure-wasmhost_session=x; Secure", false),
            ("wasmhost_session2=x", false),
            ("wasmhost_sessio=x", false),
            ("x_wasmhost_session=x", false),
            ("wasmhost-session=x", false),
            ("\"wasmhost_session\"=x", false),
            // The name is never in the attributes or the value.
            ("theme=dark; wasmhost_session=x", false),
            ("theme=wasmhost_session=x", false),
            ("", false),
            ("=", false),
        ];
        for (value, want) in table {
            assert_eq!(sets_session_cookie(value), want, "{value:?}");
        }
    }

    #[test]
    fn only_the_session_cookies_set_cookie_headers_are_dropped() {
        let header = |n: &str, v: &str| (n.to_owned(), v.to_owned());
        let mut headers = vec![
            header("Set-Cookie", "a=1"),
            header("set-cookie", "wasmhost_session=x"),
            header("X-Note", "wasmhost_session=x"),
            header("SET-COOKIE", "wasmhost_session=y; Path=/"),
            header("Set-Cookie", "b=2"),
        ];
        assert_eq!(drop_session_cookies(&mut headers), 2);
        assert_eq!(
            headers,
            [
                header("Set-Cookie", "a=1"),
                header("X-Note", "wasmhost_session=x"),
                header("Set-Cookie", "b=2"),
            ]
        );
        assert_eq!(drop_session_cookies(&mut headers), 0);
    }
}
