//! Reading and validating submitted fields: a urlencoded form or a JSON object body, with clear messages for missing or bad fields.
//!
//! ```
//! use guest_sdk::{Request, form::Form};
//! let req = Request::new("POST", "/todo/update")
//!     .with_header("Content-Type", "application/x-www-form-urlencoded")
//!     .with_body("id=3&title=+milk+&done=on");
//! let form = Form::parse(&req);
//! assert_eq!(form.id("id"), Ok(3));
//! assert_eq!(form.text("title", 1, 200).as_deref(), Ok("milk"));
//! assert_eq!(form.flag("done"), Ok(true));
//! assert_eq!(form.flag("other"), Ok(false));
//! assert!(form.id("title").is_err());
//! ```

use std::fmt;

use crate::request::Request;

/// A field that is missing or not acceptable; the message names the field
/// and is meant for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormError(pub String);

impl fmt::Display for FormError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FormError {}

/// Submitted fields as name/value pairs, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Form {
    /// The fields; the first of a repeated name wins in lookups.
    pub fields: Vec<(String, String)>,
}

impl Form {
    /// The request's fields: a JSON object body if the `Content-Type` is
    /// `application/json` (strings, numbers and booleans become text; other
    /// values and a body that is not an object give no fields), otherwise the
    /// body read as `application/x-www-form-urlencoded`.
    pub fn parse(req: &Request) -> Form {
        let is_json = req
            .content_type()
            .is_some_and(|ct| ct.to_ascii_lowercase().starts_with("application/json"));
        if !is_json {
            return Form { fields: req.form() };
        }
        let fields = match serde_json::from_slice::<serde_json::Value>(&req.body) {
            Ok(serde_json::Value::Object(map)) => map
                .into_iter()
                .filter_map(|(name, value)| {
                    let text = match value {
                        serde_json::Value::String(s) => s,
                        serde_json::Value::Number(n) => n.to_string(),
                        serde_json::Value::Bool(b) => b.to_string(),
                        _ => return None,
                    };
                    Some((name, text))
                })
                .collect(),
            _ => Vec::new(),
        };
        Form { fields }
    }

    /// The query string of the request as fields.
    pub fn query(req: &Request) -> Form {
        Form {
            fields: req.query_params.clone(),
        }
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of `name`, or an error saying it is missing.
    pub fn required(&self, name: &str) -> Result<&str, FormError> {
        self.get(name)
            .ok_or_else(|| FormError(format!("missing field `{name}`")))
    }

    /// The value of `name` with surrounding whitespace trimmed, between `min`
    /// and `max` characters long.
    pub fn text(&self, name: &str, min: usize, max: usize) -> Result<String, FormError> {
        let value = self.required(name)?.trim();
        let chars = value.chars().count();
        if chars < min {
            return Err(FormError(if min <= 1 {
                format!("`{name}` must not be empty")
            } else {
                format!("`{name}` must be at least {min} characters")
            }));
        }
        if chars > max {
            return Err(FormError(format!(
                "`{name}` must be at most {max} characters (it has {chars})"
            )));
        }
        Ok(value.to_owned())
    }

    /// The value of `name` as a positive integer id.
    pub fn id(&self, name: &str) -> Result<u64, FormError> {
        parse_id(name, self.required(name)?)
    }

    /// The value of `name` as a boolean: `true`, `on`, `1` or `yes` (a
    /// checked checkbox sends `on`) are true; `false`, `off`, `0`, `no` and
    /// an absent field are false; anything else is an error.
    pub fn flag(&self, name: &str) -> Result<bool, FormError> {
        match self.get(name).map(|v| v.trim().to_ascii_lowercase()) {
            None => Ok(false),
            Some(v) => match v.as_str() {
                "true" | "on" | "1" | "yes" => Ok(true),
                "false" | "off" | "0" | "no" | "" => Ok(false),
                _ => Err(FormError(format!("`{name}` must be true or false"))),
            },
        }
    }
}

/// `value` as a positive integer id, or an error naming `field`.
pub fn parse_id(field: &str, value: &str) -> Result<u64, FormError> {
    match value.trim().parse::<u64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(FormError(format!(
            "`{field}` must be a positive whole number"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(body: &str) -> Form {
        Form::parse(
            &Request::new("POST", "/")
                .with_header("Content-Type", "application/x-www-form-urlencoded")
                .with_body(body),
        )
    }

    #[test]
    fn text_checks_presence_and_length() {
        let f = form("a=+hi+&empty=+++&long=abcdef&u=%C3%BC%C3%BC");
        let table = [
            ("a", 1, 10, Ok("hi")),
            ("empty", 1, 10, Err("`empty` must not be empty")),
            (
                "long",
                1,
                5,
                Err("`long` must be at most 5 characters (it has 6)"),
            ),
            ("long", 8, 9, Err("`long` must be at least 8 characters")),
            ("u", 1, 2, Ok("üü")),
            ("missing", 1, 10, Err("missing field `missing`")),
        ];
        for (name, min, max, want) in table {
            let got = f.text(name, min, max);
            assert_eq!(got.as_deref().map_err(|e| e.0.as_str()), want, "{name}");
        }
    }

    #[test]
    fn ids_and_flags() {
        let f = form(
            "id=12&zero=0&neg=-1&x=abc&big=99999999999999999999&on=on&t=true&f=false&odd=maybe",
        );
        assert_eq!(f.id("id"), Ok(12));
        for name in ["zero", "neg", "x", "big"] {
            assert_eq!(
                f.id(name),
                Err(FormError(format!(
                    "`{name}` must be a positive whole number"
                )))
            );
        }
        assert!(f.id("none").is_err());
        assert_eq!(f.flag("on"), Ok(true));
        assert_eq!(f.flag("t"), Ok(true));
        assert_eq!(f.flag("f"), Ok(false));
        assert_eq!(f.flag("absent"), Ok(false));
        assert!(f.flag("odd").is_err());
    }

    #[test]
    fn json_bodies() {
        let req = Request::new("POST", "/")
            .with_header("Content-Type", "application/json; charset=utf-8")
            .with_body(r#"{"id": 3, "title": "x", "done": true, "skip": [1]}"#);
        let f = Form::parse(&req);
        assert_eq!(f.id("id"), Ok(3));
        assert_eq!(f.get("title"), Some("x"));
        assert_eq!(f.flag("done"), Ok(true));
        assert_eq!(f.get("skip"), None);
        let bad = req.with_body("[1,2]");
        assert_eq!(Form::parse(&bad), Form::default());
    }
}
