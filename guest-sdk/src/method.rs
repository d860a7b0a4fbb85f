//! The HTTP methods a guest can receive (ABI section 5.1).

use std::fmt;

/// One of the request methods the host passes to guests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Method {
    /// `GET`
    Get,
    /// `HEAD`
    Head,
    /// `POST`
    Post,
    /// `PUT`
    Put,
    /// `DELETE`
    Delete,
    /// `PATCH`
    Patch,
    /// `OPTIONS`
    Options,
}

impl Method {
    /// Every method, in the order used for `Allow` headers.
    pub const ALL: [Method; 7] = [
        Method::Get,
        Method::Head,
        Method::Post,
        Method::Put,
        Method::Delete,
        Method::Patch,
        Method::Options,
    ];

    /// The method's name as sent on the wire, e.g. `"GET"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Patch => "PATCH",
            Method::Options => "OPTIONS",
        }
    }

    /// Parses a method name; methods are case-sensitive, so `"get"` is `None`.
    pub fn parse(name: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.as_str() == name)
    }

    /// A bit unique to this method, for method sets.
    pub(crate) fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_as_str() {
        let table = [
            ("GET", Some(Method::Get)),
            ("HEAD", Some(Method::Head)),
            ("POST", Some(Method::Post)),
            ("PUT", Some(Method::Put)),
            ("DELETE", Some(Method::Delete)),
            ("PATCH", Some(Method::Patch)),
            ("OPTIONS", Some(Method::Options)),
            ("get", None),
            ("TRACE", None),
            ("", None),
        ];
        for (name, want) in table {
            assert_eq!(Method::parse(name), want, "{name:?}");
            if let Some(m) = want {
                assert_eq!(m.as_str(), name);
                assert_eq!(m.to_string(), name);
            }
        }
    }

    #[test]
    fn bits_are_distinct() {
        let all = Method::ALL.iter().fold(0u8, |acc, m| {
            assert_eq!(acc & m.bit(), 0, "{m}");
            acc | m.bit()
        });
        assert_eq!(all.count_ones(), 7);
    }
}
