//! Pure request routing: path patterns, host selection, specificity and parameter decoding.
//!
//! A [`Router`] is built once from `(host, pattern, target)` triples and then
//! answers [`Router::route`] without I/O. The pattern language and the matching
//! rules are documented in `docs/routes.md`; in short:
//!
//! * a pattern starts with `/`; each segment is a literal (RFC 3986 `pchar`s,
//!   percent-encoding kept as written), a `{name}` parameter, or, as the last
//!   segment only, `...`, which makes the pattern a prefix wildcard: `/x/...`
//!   matches `/x`, `/x/` and everything below `/x/`;
//! * request paths are matched raw, segment by segment, without decoding;
//!   literals compare byte for byte, except that the hex digits of `%XX`
//!   escapes compare case-insensitively; a parameter matches one non-empty
//!   segment;
//! * a request whose host names some route sees only that host's routes,
//!   every other request sees only the host-less routes;
//! * the most specific pattern wins: at the first segment where two patterns
//!   differ, a literal beats a parameter, which beats the wildcard; when every
//!   segment is equal, the exact pattern beats the wildcard.
//!
//! Routes live in one segment trie per host. Matching walks it depth first,
//! trying the literal child, then the parameter child, then the node's
//! wildcard, so the first match found is the most specific one and every trie
//! node is visited at most once.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use percent_encoding::percent_decode_str;

/// Longest path pattern, in bytes: real patterns are short, and this keeps
/// error messages and the trie small.
pub const MAX_PATTERN_LEN: usize = 1024;

/// Most segments in one pattern: bounds the trie depth, and so the recursion
/// depth of matching.
pub const MAX_PATTERN_SEGMENTS: usize = 64;

/// Longest host name (RFC 1035): a longer name cannot be resolved anyway.
pub const MAX_HOST_LEN: usize = 253;

/// Longest label of a host name (RFC 1035).
pub const MAX_HOST_LABEL_LEN: usize = 63;

/// An error building a [`Router`] or routing a request.
///
/// Route numbers in messages count from 1; the `index` fields count from 0
/// (positions in the list given to [`Router::new`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// A path pattern breaks the pattern syntax.
    #[error("route {} ({}): invalid path pattern: {reason}", .index + 1, one_line(.pattern))]
    Pattern {
        index: usize,
        pattern: String,
        reason: String,
    },
    /// A route's host is not a DNS name or IP literal.
    #[error(
        "route {} ({}): invalid host \"{}\": {reason}",
        .index + 1,
        one_line(.pattern),
        one_line(.host)
    )]
    Host {
        index: usize,
        pattern: String,
        host: String,
        reason: String,
    },
    /// Two routes for the same host have patterns of the same shape, so
    /// neither would be more specific than the other.
    #[error(
        "route {} ({}) conflicts with route {} ({})",
        .index + 1,
        one_line(.pattern),
        .other_index + 1,
        one_line(.other_pattern)
    )]
    Conflict {
        index: usize,
        pattern: String,
        other_index: usize,
        other_pattern: String,
    },
    /// A matched parameter cannot be handed to an app (answer 400).
    #[error("path parameter `{name}` {reason}")]
    Param { name: String, reason: &'static str },
    /// The request path has a `.` or `..` segment, plain or percent-encoded
    /// (answer 400): routing it raw would let `/static/../x` escape a prefix.
    #[error("request path has a `.` or `..` segment")]
    DotSegment,
}

/// One segment of a parsed pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// A literal, with the hex digits of its `%XX` escapes upper-cased.
    Literal(String),
    /// A `{name}` parameter.
    Param(String),
}

/// A syntactically valid path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    segments: Vec<Segment>,
    prefix: bool,
}

impl Pattern {
    /// Parses and validates a pattern; the error is the reason it is invalid.
    pub fn parse(pattern: &str) -> Result<Pattern, String> {
        if pattern.len() > MAX_PATTERN_LEN {
            return Err(format!("longer than {MAX_PATTERN_LEN} bytes"));
        }
        let Some(body) = pattern.strip_prefix('/') else {
            return Err("must start with `/`".to_owned());
        };
        let count = body.split('/').count();
        if count > MAX_PATTERN_SEGMENTS {
            return Err(format!("more than {MAX_PATTERN_SEGMENTS} segments"));
        }
        let mut segments = Vec::with_capacity(count);
        let mut prefix = false;
        for (i, seg) in body.split('/').enumerate() {
            let last = i + 1 == count;
            if seg == "..." {
                if !last {
                    return Err("`...` is only allowed as the last segment".to_owned());
                }
                prefix = true;
            } else if seg.is_empty() {
                // Only the last segment may be empty: `/` and `/a/`.
                if !last {
                    return Err("empty segment (`//`)".to_owned());
                }
                segments.push(Segment::Literal(String::new()));
            } else if let Some(inner) = seg.strip_prefix('{') {
                let name = parse_param(seg, inner)?;
                let duplicate = segments
                    .iter()
                    .any(|s| matches!(s, Segment::Param(n) if n == name));
                if duplicate {
                    return Err(format!("parameter `{{{name}}}` appears twice"));
                }
                segments.push(Segment::Param(name.to_owned()));
            } else {
                check_literal(seg)?;
                segments.push(Segment::Literal(normalize_escapes(seg).into_owned()));
            }
        }
        Ok(Pattern { segments, prefix })
    }

    /// Whether the pattern ends in `...` (a prefix wildcard).
    pub fn is_prefix(&self) -> bool {
        self.prefix
    }

    /// The parameter names, in pattern order.
    fn param_names(&self) -> Vec<String> {
        self.segments
            .iter()
            .filter_map(|s| match s {
                Segment::Param(name) => Some(name.clone()),
                Segment::Literal(_) => None,
            })
            .collect()
    }
}

/// Validates the `name}` after a segment's `{`; returns the name.
fn parse_param<'s>(seg: &str, inner: &'s str) -> Result<&'s str, String> {
    let Some(name) = inner.strip_suffix('}') else {
        return Err(format!(
            "segment `{}`: a parameter must be a whole segment, like `{{id}}`",
            one_line(seg)
        ));
    };
    let mut chars = name.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(format!(
            "parameter `{}`: a name is a letter or `_` followed by letters, digits or `_`",
            one_line(seg)
        ));
    }
    Ok(name)
}

/// Checks that a literal segment is made of RFC 3986 `pchar`s and is not a
/// dot segment.
fn check_literal(seg: &str) -> Result<(), String> {
    if is_dot_segment(seg) {
        return Err(format!(
            "segment `{}`: `.` and `..` segments are not allowed",
            one_line(seg)
        ));
    }
    let mut chars = seg.chars();
    while let Some(c) = chars.next() {
        match c {
            '%' => {
                let hex = |c: Option<char>| c.is_some_and(|c| c.is_ascii_hexdigit());
                if !(hex(chars.next()) && hex(chars.next())) {
                    return Err(format!(
                        "segment `{}`: `%` must be followed by two hex digits",
                        one_line(seg)
                    ));
                }
            }
            '{' | '}' => {
                return Err(format!(
                    "segment `{}`: a parameter must be a whole segment, like `{{id}}`",
                    one_line(seg)
                ));
            }
            c if c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@".contains(c) => {}
            c => {
                return Err(format!(
                    "segment `{}`: character {c:?} is not allowed (percent-encode it)",
                    one_line(seg)
                ));
            }
        }
    }
    Ok(())
}

/// Whether a raw segment is `.` or `..`, each dot plain or as `%2E`/`%2e`.
fn is_dot_segment(seg: &str) -> bool {
    let mut rest = seg.as_bytes();
    let mut dots = 0;
    while !rest.is_empty() {
        rest = match rest {
            [b'.', tail @ ..] | [b'%', b'2', b'e' | b'E', tail @ ..] => tail,
            _ => return false,
        };
        dots += 1;
    }
    dots == 1 || dots == 2
}

/// Whether a raw path has any dot segment.
fn has_dot_segment(path: &str) -> bool {
    path.contains(['.', '%']) && path.split('/').any(is_dot_segment)
}

/// Escapes control characters (`\n` and the like), so that text from a
/// config or a request cannot break a one-line message.
pub(crate) fn one_line(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Upper-cases the two characters after each `%`, so that `%c3` and `%C3`
/// compare equal; borrows when nothing changes (the common case).
fn normalize_escapes(seg: &str) -> Cow<'_, str> {
    let needed = seg
        .split('%')
        .skip(1)
        .any(|after| after.bytes().take(2).any(|b| b.is_ascii_lowercase()));
    if !needed {
        return Cow::Borrowed(seg);
    }
    let mut out = String::with_capacity(seg.len());
    let mut upper = 0;
    for c in seg.chars() {
        if upper > 0 {
            out.push(c.to_ascii_uppercase());
            upper -= 1;
        } else {
            if c == '%' {
                upper = 2;
            }
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Validates a route's host and returns it in the form requests are looked up
/// by: lower case, IPv6 literals bracketed and in canonical form. The error
/// is the reason it is invalid.
pub fn normalize_host(host: &str) -> Result<String, String> {
    if host.is_empty() {
        return Err("is empty".to_owned());
    }
    if let Some(inner) = host.strip_prefix('[') {
        let Some(addr) = inner.strip_suffix(']') else {
            return Err("has `[` without a closing `]`".to_owned());
        };
        let addr: Ipv6Addr = addr
            .parse()
            .map_err(|_| "is not a valid IPv6 address".to_owned())?;
        return Ok(format!("[{addr}]"));
    }
    if host.contains(':') {
        return Err(
            "must not include a port (an IPv6 address goes in brackets, like [::1])".to_owned(),
        );
    }
    if host.len() > MAX_HOST_LEN {
        return Err(format!("is longer than {MAX_HOST_LEN} characters"));
    }
    if host.ends_with('.') {
        return Err("must not end with `.`".to_owned());
    }
    let host = host.to_ascii_lowercase();
    for label in host.split('.') {
        if label.is_empty() {
            return Err("has an empty label (`..` or a leading `.`)".to_owned());
        }
        if label.len() > MAX_HOST_LABEL_LEN {
            return Err(format!(
                "has a label longer than {MAX_HOST_LABEL_LEN} characters"
            ));
        }
        if let Some(c) = label
            .chars()
            .find(|&c| !(c.is_ascii_alphanumeric() || c == '-'))
        {
            return Err(if c.is_ascii() {
                format!("has {c:?}; a host name has letters, digits, `-` and `.`")
            } else {
                format!("has {c:?}; write an internationalised name in its xn-- form")
            });
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("has a label that starts or ends with `-`".to_owned());
        }
    }
    let numeric = host
        .split('.')
        .all(|label| label.bytes().all(|b| b.is_ascii_digit()));
    if numeric && host.parse::<Ipv4Addr>().is_err() {
        return Err("is not a valid IPv4 address".to_owned());
    }
    Ok(host)
}

/// The key a request's host is looked up by (see [`normalize_host`]); the
/// caller has already removed the port.
fn host_key(host: &str) -> Cow<'_, str> {
    let host = host.strip_suffix('.').unwrap_or(host);
    if let Some(addr) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']'))
        && let Ok(addr) = addr.parse::<Ipv6Addr>()
    {
        return Cow::Owned(format!("[{addr}]"));
    }
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    }
}

/// A routing table from `(host, pattern)` to targets of type `T`.
#[derive(Debug)]
pub struct Router<T> {
    entries: Vec<Entry<T>>,
    /// The host-less routes.
    default: Node,
    /// The routes of each named host, keyed by [`normalize_host`].
    hosts: HashMap<String, Node>,
}

#[derive(Debug)]
struct Entry<T> {
    pattern: String,
    params: Vec<String>,
    target: T,
}

/// A trie node: the patterns whose segments so far lead here.
#[derive(Debug, Default)]
struct Node {
    literals: HashMap<String, Node>,
    param: Option<Box<Node>>,
    /// The pattern that ends here (index into `entries`).
    exact: Option<usize>,
    /// The pattern that ends here with `...`.
    prefix: Option<usize>,
}

/// A successful match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch<'a, T> {
    pub target: &'a T,
    /// The pattern as written in the route.
    pub pattern: &'a str,
    /// `(name, percent-decoded value)`, in pattern order.
    pub params: Vec<(String, String)>,
    /// For a prefix pattern, the raw path after the prefix: `""` or starting
    /// with `/`. Always `""` for an exact pattern.
    pub rest: String,
}

impl<T> Router<T> {
    /// Builds a router from `(host, pattern, target)`; validates each pattern
    /// and host and refuses patterns of the same shape for the same host.
    pub fn new(routes: Vec<(Option<String>, String, T)>) -> Result<Router<T>, RouteError> {
        let mut entries: Vec<Entry<T>> = Vec::with_capacity(routes.len());
        let mut default = Node::default();
        let mut hosts: HashMap<String, Node> = HashMap::new();
        for (index, (host, pattern, target)) in routes.into_iter().enumerate() {
            let parsed = match Pattern::parse(&pattern) {
                Ok(parsed) => parsed,
                Err(reason) => {
                    return Err(RouteError::Pattern {
                        index,
                        pattern,
                        reason,
                    });
                }
            };
            let mut node = match host {
                None => &mut default,
                Some(host) => match normalize_host(&host) {
                    Ok(key) => hosts.entry(key).or_default(),
                    Err(reason) => {
                        return Err(RouteError::Host {
                            index,
                            pattern,
                            host,
                            reason,
                        });
                    }
                },
            };
            for seg in &parsed.segments {
                node = match seg {
                    Segment::Literal(lit) => node.literals.entry(lit.clone()).or_default(),
                    Segment::Param(_) => node.param.get_or_insert_with(Box::default),
                };
            }
            let slot = if parsed.prefix {
                &mut node.prefix
            } else {
                &mut node.exact
            };
            if let Some(other_index) = *slot {
                return Err(RouteError::Conflict {
                    index,
                    pattern,
                    other_index,
                    other_pattern: entries[other_index].pattern.clone(),
                });
            }
            *slot = Some(index);
            entries.push(Entry {
                pattern,
                params: parsed.param_names(),
                target,
            });
        }
        Ok(Router {
            entries,
            default,
            hosts,
        })
    }

    /// Routes a request. `host` is the request's host without its port;
    /// `raw_path` is the path exactly as sent (still percent-encoded, no
    /// query). `Ok(None)` means no route matches (404); an error means the
    /// request is bad (400).
    pub fn route<'a>(
        &'a self,
        host: Option<&str>,
        raw_path: &str,
    ) -> Result<Option<RouteMatch<'a, T>>, RouteError> {
        if !raw_path.starts_with('/') {
            return Ok(None);
        }
        if has_dot_segment(raw_path) {
            return Err(RouteError::DotSegment);
        }
        let root = match host {
            Some(host) if !self.hosts.is_empty() => self
                .hosts
                .get(host_key(host).as_ref())
                .unwrap_or(&self.default),
            _ => &self.default,
        };
        let mut raw_params = Vec::new();
        let Some((index, rest)) = walk(root, raw_path, &mut raw_params) else {
            return Ok(None);
        };
        let entry = &self.entries[index];
        let mut params = Vec::with_capacity(raw_params.len());
        for (name, raw) in entry.params.iter().zip(raw_params) {
            params.push((name.clone(), decode_param(name, raw)?));
        }
        Ok(Some(RouteMatch {
            target: &entry.target,
            pattern: &entry.pattern,
            params,
            rest: rest.to_owned(),
        }))
    }
}

/// Finds the most specific pattern under `node` for `rem`, the part of the
/// path not yet matched (`""` or starting with `/`); returns its index and
/// the unmatched rest for a prefix match. Pushes the raw parameter values.
fn walk<'p>(node: &Node, rem: &'p str, params: &mut Vec<&'p str>) -> Option<(usize, &'p str)> {
    let Some(after) = rem.strip_prefix('/') else {
        // The whole path is matched: `/x` matches both `/x` and `/x/...`.
        return node
            .exact
            .map(|i| (i, ""))
            .or(node.prefix.map(|i| (i, rem)));
    };
    let (seg, next) = after.find('/').map_or((after, ""), |i| after.split_at(i));
    if !node.literals.is_empty()
        && let Some(child) = node.literals.get(normalize_escapes(seg).as_ref())
        && let Some(found) = walk(child, next, params)
    {
        return Some(found);
    }
    if let Some(child) = &node.param
        && !seg.is_empty()
    {
        params.push(seg);
        if let Some(found) = walk(child, next, params) {
            return Some(found);
        }
        params.pop();
    }
    node.prefix.map(|i| (i, rem))
}

/// Percent-decodes a parameter value for an app.
fn decode_param(name: &str, raw: &str) -> Result<String, RouteError> {
    let error = |reason| RouteError::Param {
        name: name.to_owned(),
        reason,
    };
    let value = percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| error("is not valid UTF-8 after percent-decoding"))?;
    if value.contains('\0') {
        return Err(error("contains a NUL byte after percent-decoding"));
    }
    Ok(value.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A route's `(host, pattern)`.
    type HostPattern<'a> = (Option<&'a str>, &'a str);
    /// A decoded `(name, value)` parameter.
    type Param<'a> = (&'a str, &'a str);

    /// Builds a host-less router whose targets are the patterns' positions.
    fn router(patterns: &[&str]) -> Router<usize> {
        let routes = patterns
            .iter()
            .enumerate()
            .map(|(i, p)| (None, (*p).to_owned(), i))
            .collect();
        match Router::new(routes) {
            Ok(router) => router,
            Err(e) => panic!("{patterns:?}: {e}"),
        }
    }

    /// The pattern that `path` routes to, if any.
    fn matched<'a>(router: &'a Router<usize>, host: Option<&str>, path: &str) -> Option<&'a str> {
        match router.route(host, path) {
            Ok(m) => m.map(|m| m.pattern),
            Err(e) => panic!("{path}: {e}"),
        }
    }

    #[test]
    fn valid_patterns() {
        // (pattern, is prefix)
        let table = [
            ("/", false),
            ("/hello", false),
            ("/hello/", false),
            ("/a/b/c", false),
            ("/post/{id}", false),
            ("/{a}/{b}/{_c9}", false),
            ("/...", true),
            ("/x/...", true),
            ("/user/{id}/...", true),
            ("/caf%C3%A9", false),
            ("/a-b.c_d~e!$&'()*+,;=:@", false),
            ("/v1.2/...", true),
            ("/a.../b", false),
        ];
        for (pattern, prefix) in table {
            match Pattern::parse(pattern) {
                Ok(p) => assert_eq!(p.is_prefix(), prefix, "{pattern}"),
                Err(e) => panic!("{pattern}: {e}"),
            }
        }
    }

    #[test]
    fn invalid_patterns() {
        // (pattern, part of the reason)
        let long = format!("/{}", "a".repeat(MAX_PATTERN_LEN));
        let deep = "/a".repeat(MAX_PATTERN_SEGMENTS + 1);
        let table = [
            ("", "must start with `/`"),
            ("hello", "must start with `/`"),
            ("//", "empty segment"),
            ("/a//b", "empty segment"),
            ("/a//...", "empty segment"),
            ("/.../a", "only allowed as the last segment"),
            ("/a b", "character ' ' is not allowed"),
            ("/caf\u{e9}", "character '\u{e9}' is not allowed"),
            ("/a?b", "character '?' is not allowed"),
            ("/a#b", "character '#' is not allowed"),
            ("/%zz", "two hex digits"),
            ("/a%2", "two hex digits"),
            ("/{id", "whole segment"),
            ("/x{id}", "whole segment"),
            ("/{id}x", "whole segment"),
            ("/{}", "a name is a letter"),
            ("/{9a}", "a name is a letter"),
            ("/{a-b}", "a name is a letter"),
            ("/{id}/{id}", "appears twice"),
            ("/./a", "`..` segments are not allowed"),
            ("/a/..", "`..` segments are not allowed"),
            ("/%2e%2E", "`..` segments are not allowed"),
            (long.as_str(), "longer than"),
            (deep.as_str(), "more than"),
        ];
        for (pattern, reason) in table {
            match Pattern::parse(pattern) {
                Ok(_) => panic!("{pattern} was accepted"),
                Err(e) => assert!(e.contains(reason), "{pattern}: {e}"),
            }
        }
    }

    #[test]
    fn pattern_error_names_the_route() {
        let routes = vec![(None, "/ok".to_owned(), ()), (None, "/a//b".to_owned(), ())];
        let err = Router::new(routes).map(|_| ()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "route 2 (/a//b): invalid path pattern: empty segment (`//`)"
        );
    }

    #[test]
    fn hosts() {
        // (host, normalized form or the error's reason)
        let table = [
            ("example.com", Ok("example.com")),
            ("Tenant.Example.COM", Ok("tenant.example.com")),
            ("localhost", Ok("localhost")),
            ("a-b.c1", Ok("a-b.c1")),
            ("xn--caf-dma.fr", Ok("xn--caf-dma.fr")),
            ("127.0.0.1", Ok("127.0.0.1")),
            ("[::1]", Ok("[::1]")),
            ("[0:0::1]", Ok("[::1]")),
            ("[2001:DB8::A]", Ok("[2001:db8::a]")),
            ("", Err("is empty")),
            ("example.com:8080", Err("port")),
            ("::1", Err("port")),
            ("[::1", Err("closing")),
            ("[nope]", Err("IPv6")),
            ("example.com.", Err("end with")),
            (".example.com", Err("empty label")),
            ("a..b", Err("empty label")),
            ("-a.com", Err("starts or ends")),
            ("a_b.com", Err("'_'")),
            ("*.example.com", Err("'*'")),
            ("caf\u{e9}.fr", Err("xn--")),
            ("256.1.1.1", Err("IPv4")),
            ("1.2.3", Err("IPv4")),
        ];
        for (host, want) in table {
            match (normalize_host(host), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{host}"),
                (Err(got), Err(want)) => assert!(got.contains(want), "{host}: {got}"),
                (got, _) => panic!("{host}: {got:?}"),
            }
        }
        let label = "a".repeat(MAX_HOST_LABEL_LEN + 1);
        assert!(normalize_host(&label).is_err_and(|e| e.contains("label longer")));
        let long = ["abcdefghi"; 26].join(".");
        assert!(normalize_host(&long).is_err_and(|e| e.contains("longer than")));
    }

    #[test]
    fn conflicts() {
        // (routes as (host, pattern), the error, or None if they coexist)
        let table: [(&[HostPattern], Option<&str>); 12] = [
            (
                &[(None, "/post/{id}"), (None, "/post/{slug}")],
                Some("route 2 (/post/{slug}) conflicts with route 1 (/post/{id})"),
            ),
            (
                &[(None, "/hello"), (None, "/x"), (None, "/hello")],
                Some("route 3 (/hello) conflicts with route 1 (/hello)"),
            ),
            (
                &[(None, "/a/..."), (None, "/a/...")],
                Some("route 2 (/a/...) conflicts with route 1 (/a/...)"),
            ),
            (
                &[(None, "/{a}/x/{b}/..."), (None, "/{c}/x/{d}/...")],
                Some("route 2 (/{c}/x/{d}/...) conflicts with route 1 (/{a}/x/{b}/...)"),
            ),
            (
                &[(None, "/caf%c3%a9"), (None, "/caf%C3%A9")],
                Some("route 2 (/caf%C3%A9) conflicts with route 1 (/caf%c3%a9)"),
            ),
            (
                &[(Some("a.com"), "/x"), (Some("A.com"), "/x")],
                Some("route 2 (/x) conflicts with route 1 (/x)"),
            ),
            (&[(None, "/hello"), (None, "/hello/...")], None),
            (&[(None, "/hello"), (None, "/hello/")], None),
            (&[(None, "/post/{id}"), (None, "/post/new")], None),
            (&[(None, "/a/{x}"), (None, "/{y}/b")], None),
            (&[(None, "/x"), (Some("a.com"), "/x")], None),
            (&[(Some("a.com"), "/x"), (Some("b.com"), "/x")], None),
        ];
        for (routes, want) in table {
            let list = routes
                .iter()
                .map(|(h, p)| (h.map(str::to_owned), (*p).to_owned(), ()))
                .collect();
            let got = Router::new(list).err().map(|e| e.to_string());
            assert_eq!(got.as_deref(), want, "{routes:?}");
        }
    }

    #[test]
    fn conflict_indices() {
        let routes = vec![
            (None, "/a".to_owned(), ()),
            (None, "/b".to_owned(), ()),
            (None, "/a".to_owned(), ()),
        ];
        assert!(matches!(
            Router::new(routes),
            Err(RouteError::Conflict {
                index: 2,
                other_index: 0,
                ..
            })
        ));
    }

    #[test]
    fn specificity() {
        let r = router(&[
            "/...",
            "/hello",
            "/hello/...",
            "/post/{id}",
            "/post/new",
            "/a/{x}",
            "/{y}/b",
            "/{y}/c/...",
            "/d/...",
            "/d/e/...",
            "/d/e/f",
            "/g/{x}/...",
            "/g/{x}/h",
            "/",
            "/i/",
            "/i/...",
        ]);
        // (path, winning pattern)
        let table = [
            ("/hello", "/hello"),
            ("/hello/", "/hello/..."),
            ("/hello/x", "/hello/..."),
            ("/hellox", "/..."),
            ("/other", "/..."),
            ("/post/42", "/post/{id}"),
            ("/post/new", "/post/new"),
            ("/post/new/x", "/..."),
            ("/a/b", "/a/{x}"),
            ("/z/b", "/{y}/b"),
            ("/a/c/x", "/{y}/c/..."),
            ("/d/c/x", "/d/..."),
            ("/d/e", "/d/e/..."),
            ("/d/e/f", "/d/e/f"),
            ("/d/e/f/g", "/d/e/..."),
            ("/d/x", "/d/..."),
            ("/g/1/h", "/g/{x}/h"),
            ("/g/1/i", "/g/{x}/..."),
            ("/g/1", "/g/{x}/..."),
            ("/g", "/..."),
            ("/", "/"),
            ("/i/", "/i/"),
            ("/i", "/i/..."),
            ("/i/j", "/i/..."),
        ];
        for (path, want) in table {
            assert_eq!(matched(&r, None, path), Some(want), "{path}");
        }
    }

    #[test]
    fn exact_beats_wildcard_at_equal_segments() {
        // `/{a}/{b}` matches exactly, `/{a}/...` only as a prefix.
        let r = router(&["/{a}/...", "/{a}/{b}"]);
        assert_eq!(matched(&r, None, "/x/y"), Some("/{a}/{b}"));
        assert_eq!(matched(&r, None, "/x/y/z"), Some("/{a}/..."));
    }

    #[test]
    fn backtracks_to_parameter() {
        // The literal branch `/a/b` dead-ends for `/a/c`; the parameter branch wins.
        let r = router(&["/a/b", "/{x}/c"]);
        assert_eq!(matched(&r, None, "/a/c"), Some("/{x}/c"));
        assert_eq!(matched(&r, None, "/a/d"), None);
    }

    #[test]
    fn prefix_matching() {
        let r = router(&["/x/..."]);
        // (path, rest, or None if it must not match)
        let table = [
            ("/x", Some("")),
            ("/x/", Some("/")),
            ("/x/y/z", Some("/y/z")),
            ("/x//y", Some("//y")),
            ("/x/y%20z/", Some("/y%20z/")),
            ("/xy", None),
            ("/", None),
            ("/y/x", None),
            ("x", None),
            ("", None),
            ("*", None),
        ];
        for (path, want) in table {
            let got = match r.route(None, path) {
                Ok(m) => m.map(|m| m.rest),
                Err(e) => panic!("{path}: {e}"),
            };
            assert_eq!(got.as_deref(), want, "{path}");
        }
        let all = router(&["/..."]);
        for (path, rest) in [("/", "/"), ("/a", "/a"), ("/a/b/", "/a/b/")] {
            let got = all.route(None, path).ok().flatten().map(|m| m.rest);
            assert_eq!(got.as_deref(), Some(rest), "{path}");
        }
        let exact = router(&["/x"]);
        let got = exact.route(None, "/x").ok().flatten().map(|m| m.rest);
        assert_eq!(got.as_deref(), Some(""));
    }

    #[test]
    fn raw_literal_matching() {
        let r = router(&["/caf%C3%A9", "/hello"]);
        // (path, matched pattern)
        let table = [
            ("/caf%C3%A9", Some("/caf%C3%A9")),
            ("/caf%c3%a9", Some("/caf%C3%A9")),
            ("/caf\u{e9}", None),
            ("/hello", Some("/hello")),
            ("/Hello", None),
            ("/%68ello", None),
            ("/hello/", None),
        ];
        for (path, want) in table {
            assert_eq!(matched(&r, None, path), want, "{path}");
        }
    }

    #[test]
    fn host_routing() {
        let routes = vec![
            (None, "/...".to_owned(), "default"),
            (None, "/only-default".to_owned(), "default"),
            (
                Some("Tenant.Example.com".to_owned()),
                "/...".to_owned(),
                "tenant",
            ),
            (Some("other.example".to_owned()), "/x".to_owned(), "other"),
            (Some("[::1]".to_owned()), "/...".to_owned(), "v6"),
        ];
        let r = match Router::new(routes) {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        };
        // (host, path, target or None)
        let table = [
            (Some("tenant.example.com"), "/a", Some("tenant")),
            (Some("TENANT.example.COM"), "/a", Some("tenant")),
            (Some("tenant.example.com."), "/a", Some("tenant")),
            (Some("tenant.example.com"), "/only-default", Some("tenant")),
            (Some("example.com"), "/a", Some("default")),
            (Some("example.com"), "/only-default", Some("default")),
            (None, "/a", Some("default")),
            (Some(""), "/a", Some("default")),
            // Tenant isolation: a named host never falls back to host-less routes.
            (Some("other.example"), "/x", Some("other")),
            (Some("other.example"), "/y", None),
            (Some("[::1]"), "/", Some("v6")),
            (Some("[0::1]"), "/", Some("v6")),
            // The caller strips the port; with it the host is unknown.
            (Some("tenant.example.com:8080"), "/a", Some("default")),
        ];
        for (host, path, want) in table {
            let got = match r.route(host, path) {
                Ok(m) => m.map(|m| *m.target),
                Err(e) => panic!("{host:?} {path}: {e}"),
            };
            assert_eq!(got, want, "{host:?} {path}");
        }
        let bad = Router::new(vec![(Some("a:80".to_owned()), "/x".to_owned(), ())]);
        assert!(matches!(bad, Err(RouteError::Host { index: 0, .. })));
    }

    #[test]
    fn param_decoding() {
        let r = router(&["/p/{a}", "/q/{a}/{b}/...", "/{x}"]);
        // (path, params or the error)
        let table: [(&str, Result<&[Param], RouteError>); 9] = [
            ("/p/42", Ok(&[("a", "42")])),
            ("/p/a%20b", Ok(&[("a", "a b")])),
            ("/p/a+b", Ok(&[("a", "a+b")])),
            ("/p/caf%C3%A9", Ok(&[("a", "caf\u{e9}")])),
            ("/p/a%2Fb", Ok(&[("a", "a/b")])),
            ("/p/100%", Ok(&[("a", "100%")])),
            ("/q/1/2/3", Ok(&[("a", "1"), ("b", "2")])),
            (
                "/p/%ff",
                Err(RouteError::Param {
                    name: "a".to_owned(),
                    reason: "is not valid UTF-8 after percent-decoding",
                }),
            ),
            (
                "/p/a%00",
                Err(RouteError::Param {
                    name: "a".to_owned(),
                    reason: "contains a NUL byte after percent-decoding",
                }),
            ),
        ];
        for (path, want) in table {
            let got = r.route(None, path).map(|m| m.map(|m| m.params));
            let want = want.map(|w| {
                Some(
                    w.iter()
                        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                        .collect::<Vec<_>>(),
                )
            });
            assert_eq!(got, want, "{path}");
        }
        // A parameter never matches an empty segment.
        assert_eq!(matched(&r, None, "/p/"), None);
        assert_eq!(
            r.route(None, "/p/%ff")
                .err()
                .map(|e| e.to_string())
                .as_deref(),
            Some("path parameter `a` is not valid UTF-8 after percent-decoding")
        );
    }

    #[test]
    fn dot_segments_are_rejected() {
        let r = router(&["/..."]);
        // (path, rejected)
        let table = [
            ("/static/../secret", true),
            ("/static/./x", true),
            ("/..", true),
            ("/a/%2e%2E/b", true),
            ("/a/.%2e", true),
            ("/a/%2E", true),
            ("/a/...", false),
            ("/a/.hidden", false),
            ("/a/b.c", false),
            ("/a/%2e%2e%2e", false),
        ];
        for (path, rejected) in table {
            let got = r.route(None, path);
            assert_eq!(got.is_err(), rejected, "{path}: {got:?}");
        }
    }

    #[test]
    fn many_routes() {
        let patterns: Vec<String> = (0..500)
            .flat_map(|i| {
                [
                    format!("/r{i}"),
                    format!("/r{i}/{{id}}"),
                    format!("/p{i}/..."),
                ]
            })
            .collect();
        let refs: Vec<&str> = patterns.iter().map(String::as_str).collect();
        let r = router(&refs);
        assert_eq!(matched(&r, None, "/r499"), Some("/r499"));
        assert_eq!(matched(&r, None, "/r250/7"), Some("/r250/{id}"));
        assert_eq!(matched(&r, None, "/p3/a/b"), Some("/p3/..."));
        assert_eq!(matched(&r, None, "/q"), None);
    }
}
