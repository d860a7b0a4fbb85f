//! The shape of `routes.json` as serde reads it, before validation.
//!
//! The `Raw*` structs deny unknown keys; `Object` insists on a JSON object.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, MapAccess, Visitor};
use serde_json::Value;

use crate::router::one_line;

// The file's shape. Every struct denies unknown keys; new settings are new
// optional fields. Each object goes through `Object`, because serde's derived
// structs also accept arrays, which would make `["a.wasm"]` a valid app.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub(super) apps: RawApps,
    pub(super) routes: Vec<Object<RawRoute>>,
    pub(super) login_page: Option<String>,
}

/// The apps, refusing a name defined twice (a plain map would keep the last).
#[derive(Default)]
pub(super) struct RawApps(pub(super) BTreeMap<String, RawApp>);

impl<'de> Deserialize<'de> for RawApps {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AppsVisitor;
        impl<'de> Visitor<'de> for AppsVisitor {
            type Value = RawApps;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of apps by name")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawApps, A::Error> {
                let mut apps = BTreeMap::new();
                while let Some(name) = map.next_key::<String>()? {
                    if apps.contains_key(&name) {
                        return Err(de::Error::custom(format!(
                            "app \"{}\" is defined twice",
                            one_line(&name)
                        )));
                    }
                    let Object(app) = map.next_value()?;
                    apps.insert(name, app);
                }
                Ok(RawApps(apps))
            }
        }
        deserializer.deserialize_map(AppsVisitor)
    }
}

/// Serde's default for flags that are on unless turned off.
fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApp {
    pub(super) module: String,
    #[serde(default)]
    pub(super) login_required: bool,
    #[serde(default = "yes")]
    pub(super) preinit: bool,
    pub(super) limits: Option<Object<RawLimits>>,
    pub(super) grants: Option<Object<RawGrants>>,
    pub(super) error_pages: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGrants {
    pub(super) dir: Option<Object<RawDirGrant>>,
    pub(super) env: Option<BTreeMap<String, String>>,
    pub(super) host: Option<Vec<String>>,
    pub(super) outbound: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDirGrant {
    pub(super) host: String,
    pub(super) guest: String,
}

/// Limits stay JSON values here so that a bad one is reported with its full
/// key path and the rules for its kind of value.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    pub(super) memory: Option<Value>,
    pub(super) cpu_time: Option<Value>,
    pub(super) wall_time: Option<Value>,
    pub(super) max_body: Option<Value>,
    pub(super) max_response: Option<Value>,
    pub(super) max_concurrency: Option<Value>,
    pub(super) log_output: Option<Value>,
    pub(super) fuel: Option<Value>,
    pub(super) max_queue: Option<Value>,
    pub(super) queue_timeout: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoute {
    pub(super) host: Option<String>,
    pub(super) path: String,
    pub(super) app: Option<String>,
    #[serde(rename = "static")]
    pub(super) static_dir: Option<String>,
    pub(super) login_required: Option<bool>,
}

/// What an object of the file is, for "expected ..." messages.
trait Expecting {
    const EXPECTING: &'static str;
}

impl Expecting for RawConfig {
    const EXPECTING: &'static str = "an object with \"apps\" and \"routes\"";
}

impl Expecting for RawApp {
    const EXPECTING: &'static str = "an app object like {\"module\": \"app.wasm\"}";
}

impl Expecting for RawLimits {
    const EXPECTING: &'static str = "an object of limits";
}

impl Expecting for RawGrants {
    const EXPECTING: &'static str = "an object of grants like {\"env\": {\"K\": \"V\"}}";
}

impl Expecting for RawDirGrant {
    const EXPECTING: &'static str =
        "a directory grant like {\"host\": \"data\", \"guest\": \"/data\"}";
}

impl Expecting for RawRoute {
    const EXPECTING: &'static str = "a route object like {\"path\": \"/x\", \"app\": \"name\"}";
}

/// A `T` that must be written as a JSON object.
pub(super) struct Object<T>(pub(super) T);

impl<'de, T: Deserialize<'de> + Expecting> Deserialize<'de> for Object<T> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de> + Expecting> Visitor<'de> for ObjectVisitor<T> {
            type Value = T;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(T::EXPECTING)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map))
            }
        }
        deserializer
            .deserialize_map(ObjectVisitor(PhantomData))
            .map(Object)
    }
}

#[cfg(test)]
mod tests {
    use super::super::ConfigError;
    use super::super::testing::{PATH, parse};

    #[test]
    fn unknown_keys() {
        // (text, line, column, the unknown key)
        let table = [
            ("{\"routes\": [], \"extra\": 1}", 1, 22, "extra"),
            (
                "{\"apps\": {\"a\": {\"module\": \"a.wasm\", \"modul\": 1}}, \"routes\": []}",
                1,
                43,
                "modul",
            ),
            (
                "{\"apps\": {\"a\": {\"module\": \"a.wasm\",\n  \"limits\": {\"memroy\": 1}}},\n \"routes\": []}",
                2,
                21,
                "memroy",
            ),
            (
                "{\"routes\": [\n  {\"path\": \"/\", \"app\": \"a\", \"hosts\": \"x\"}\n]}",
                2,
                35,
                "hosts",
            ),
        ];
        for (text, line, column, key) in table {
            match parse(text) {
                Err(e @ ConfigError::Schema { .. }) => {
                    let prefix =
                        format!("{PATH}:{line}:{column}: unknown field `{key}`, expected ");
                    let msg = e.to_string();
                    assert!(msg.starts_with(&prefix), "{text}: {msg}");
                }
                other => panic!("{text}: {other:?}"),
            }
        }
    }
}
