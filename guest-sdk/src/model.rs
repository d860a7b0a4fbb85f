//! A small model layer on top of [`crate::kv`]: typed records stored as JSON with auto-increment ids (the old ORM's role).
//!
//! A record type names its table; each record lives under
//! `<table>/<id as 20-digit zero-padded decimal>` (so keys sort by id), and
//! ids come from the atomic counter `<table>/#next`. Other keys under
//! `<table>/` (for example an index such as `user/by-name/alice`) are
//! ignored by [`list`] and [`find_by`].
//!
//! ```
//! use guest_sdk::model::{self, Model};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize, Debug, PartialEq)]
//! struct Todo { title: String, done: bool }
//! impl Model for Todo { const TABLE: &'static str = "todo"; }
//!
//! let id = model::insert(&Todo { title: "milk".into(), done: false })?;
//! assert_eq!(model::get::<Todo>(id)?.map(|t| t.title), Some("milk".into()));
//! assert!(model::update(id, &Todo { title: "milk".into(), done: true })?);
//! assert_eq!(model::find_by::<Todo>("done", true)?.len(), 1);
//! assert!(model::delete::<Todo>(id)?);
//! # Ok::<(), model::ModelError>(())
//! ```
//!
//! Listing and finding scan the whole table: its keys page by page, then
//! their values with `kv::get_many` (one host call per 1000 records, not one
//! per record). Fine for the small apps this is for; not an index.

use std::fmt;

use serde::Serialize;
use serde::de::{DeserializeOwned, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

use crate::kv::{self, KvError};

/// A record type stored as JSON in table [`Model::TABLE`].
pub trait Model: Serialize + DeserializeOwned {
    /// The table name: the key prefix before `/`. It should not contain `/`.
    const TABLE: &'static str;
}

/// Why a model operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelError {
    /// The storage operation failed.
    Kv(KvError),
    /// A stored record does not decode as the record type.
    Corrupt {
        /// The record's key.
        key: String,
        /// The JSON error.
        error: String,
    },
    /// The record could not be encoded as JSON.
    Encode(String),
    /// The id counter returned a value that is not a positive id.
    BadId(i64),
}

impl fmt::Display for ModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelError::Kv(err) => write!(f, "storage: {err}"),
            ModelError::Corrupt { key, error } => write!(f, "record {key} is corrupt: {error}"),
            ModelError::Encode(err) => write!(f, "cannot encode the record: {err}"),
            ModelError::BadId(n) => write!(f, "the id counter returned {n}"),
        }
    }
}

impl std::error::Error for ModelError {}

impl From<KvError> for ModelError {
    fn from(err: KvError) -> ModelError {
        ModelError::Kv(err)
    }
}

/// How many times [`update`] retries when another request changed the
/// record between its read and its write.
const UPDATE_TRIES: usize = 8;

/// The key of record `id` of `T`.
pub fn key<T: Model>(id: u64) -> String {
    format!("{}/{id:020}", T::TABLE)
}

/// The key of `T`'s id counter.
fn counter_key<T: Model>() -> String {
    format!("{}/#next", T::TABLE)
}

/// The id in a record key of `T`, or `None` for another key of the table.
fn id_of<T: Model>(key: &[u8]) -> Option<u64> {
    let rest = key.strip_prefix(T::TABLE.as_bytes())?.strip_prefix(b"/")?;
    if rest.len() != 20 || !rest.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(rest).ok()?.parse().ok()
}

/// Encodes a record.
fn encode<T: Model>(record: &T) -> Result<Vec<u8>, ModelError> {
    serde_json::to_vec(record).map_err(|e| ModelError::Encode(e.to_string()))
}

/// Decodes the record stored under `key`.
fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, ModelError> {
    serde_json::from_slice(bytes).map_err(|e| ModelError::Corrupt {
        key: key.to_owned(),
        error: e.to_string(),
    })
}

/// Takes a fresh id for `T` from the atomic counter (the first is 1).
pub fn next_id<T: Model>() -> Result<u64, ModelError> {
    let n = kv::increment(counter_key::<T>().as_bytes(), 1)?;
    u64::try_from(n)
        .ok()
        .filter(|&id| id > 0)
        .ok_or(ModelError::BadId(n))
}

/// Stores `record` under a fresh id and returns the id.
pub fn insert<T: Model>(record: &T) -> Result<u64, ModelError> {
    let bytes = encode(record)?;
    let id = next_id::<T>()?;
    kv::set(key::<T>(id).as_bytes(), &bytes)?;
    Ok(id)
}

/// Stores `record` as record `id`, creating or replacing it (for an id
/// taken with [`next_id`]).
pub fn put<T: Model>(id: u64, record: &T) -> Result<(), ModelError> {
    kv::set(key::<T>(id).as_bytes(), &encode(record)?)?;
    Ok(())
}

/// Record `id`, or `None`.
pub fn get<T: Model>(id: u64) -> Result<Option<T>, ModelError> {
    let key = key::<T>(id);
    match kv::get(key.as_bytes())? {
        Some(bytes) => decode(&key, &bytes).map(Some),
        None => Ok(None),
    }
}

/// Replaces record `id` with `record`; `false` (and nothing stored) if there
/// is no such record. A concurrent delete is never undone: the write is a
/// compare-and-swap against the value read.
pub fn update<T: Model>(id: u64, record: &T) -> Result<bool, ModelError> {
    let key = key::<T>(id);
    let new = encode(record)?;
    for _ in 0..UPDATE_TRIES {
        let Some(old) = kv::get(key.as_bytes())? else {
            return Ok(false);
        };
        if kv::cas(key.as_bytes(), Some(&old), Some(&new))? {
            return Ok(true);
        }
    }
    // Lost the race every time: the last writer wins.
    match kv::get(key.as_bytes())? {
        Some(_) => {
            kv::set(key.as_bytes(), &new)?;
            Ok(true)
        }
        None => Ok(false),
    }
}

/// Deletes record `id`; `true` if it existed.
pub fn delete<T: Model>(id: u64) -> Result<bool, ModelError> {
    Ok(kv::delete(key::<T>(id).as_bytes())?)
}

/// Every record of `T` with its id, ascending by id.
pub fn list<T: Model>() -> Result<Vec<(u64, T)>, ModelError> {
    scan(|_, _| Ok(true))
}

/// The records whose JSON field `field` equals `value`, ascending by id.
pub fn find_by<T: Model>(field: &str, value: impl Serialize) -> Result<Vec<(u64, T)>, ModelError> {
    let value = serde_json::to_value(value).map_err(|e| ModelError::Encode(e.to_string()))?;
    scan(|key, bytes| {
        // Only the one field is built; the rest of the text is skipped.
        Ok(field_of(key, bytes, field)?.as_ref() == Some(&value))
    })
}

/// The records of `T` whose stored JSON passes `keep` (given the key and
/// the text), ascending by id. A kept record is parsed once, straight into
/// `T`: for a page of 50 records, parsing each into a `serde_json::Value`
/// first took a quarter of the page's time.
fn scan<T: Model>(
    keep: impl Fn(&str, &[u8]) -> Result<bool, ModelError>,
) -> Result<Vec<(u64, T)>, ModelError> {
    let prefix = format!("{}/", T::TABLE);
    let keys: Vec<(u64, Vec<u8>)> = kv::list_all(prefix.as_bytes())?
        .into_iter()
        .filter_map(|key| id_of::<T>(&key).map(|id| (id, key)))
        .collect();
    // One host call (one read) per 1000 records, not one per record.
    let values = kv::get_many(&keys.iter().map(|(_, k)| k).collect::<Vec<_>>())?;
    let mut records = Vec::new();
    for ((id, key), value) in keys.into_iter().zip(values) {
        // Deleted since the listing: skip.
        let Some(bytes) = value else {
            continue;
        };
        let key = String::from_utf8_lossy(&key);
        if keep(&key, &bytes)? {
            records.push((id, decode(&key, &bytes)?));
        }
    }
    Ok(records)
}

/// Field `field` of the record stored under `key`, if the record is an
/// object that has it; a record that is not JSON is `Corrupt`.
fn field_of(key: &str, bytes: &[u8], field: &str) -> Result<Option<serde_json::Value>, ModelError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    match (&mut de)
        .deserialize_map(FieldOf(field))
        .and_then(|found| de.end().map(|()| found))
    {
        Ok(found) => Ok(found),
        // Not an object, or not JSON: the whole value says which.
        Err(_) => Ok(decode::<serde_json::Value>(key, bytes)?.get(field).cloned()),
    }
}

/// The value of one top-level field of a JSON object, built without
/// building the others (the last one wins if the name repeats, as in
/// `serde_json::Value`).
struct FieldOf<'f>(&'f str);

impl<'de> Visitor<'de> for FieldOf<'_> {
    type Value = Option<serde_json::Value>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(is_field) = map.next_key_seed(KeyIs(self.0))? {
            if is_field {
                found = Some(map.next_value()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// Whether an object's key is the one named, without keeping it.
struct KeyIs<'f>(&'f str);

impl<'de> DeserializeSeed<'de> for KeyIs<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyIs<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string key")
    }

    fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<bool, E> {
        Ok(key == self.0)
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Note {
        owner: String,
        text: String,
    }

    impl Model for Note {
        const TABLE: &'static str = "note";
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Other {
        n: i32,
    }

    impl Model for Other {
        const TABLE: &'static str = "note2";
    }

    fn note(owner: &str, text: &str) -> Note {
        Note {
            owner: owner.into(),
            text: text.into(),
        }
    }

    #[test]
    fn crud() {
        let a = insert(&note("ann", "one")).unwrap();
        let b = insert(&note("bob", "two")).unwrap();
        assert_eq!((a, b), (1, 2));
        assert_eq!(key::<Note>(a), "note/00000000000000000001");
        assert_eq!(get::<Note>(a).unwrap(), Some(note("ann", "one")));
        assert_eq!(get::<Note>(99).unwrap(), None);
        assert!(update(a, &note("ann", "uno")).unwrap());
        assert!(!update(99, &note("x", "y")).unwrap());
        assert_eq!(get::<Note>(99).unwrap(), None);
        assert_eq!(get::<Note>(a).unwrap().unwrap().text, "uno");
        assert!(delete::<Note>(a).unwrap());
        assert!(!delete::<Note>(a).unwrap());
        assert_eq!(list::<Note>().unwrap(), vec![(b, note("bob", "two"))]);
        // Ids are never reused.
        assert_eq!(insert(&note("cy", "three")).unwrap(), 3);
    }

    #[test]
    fn list_and_find_ignore_other_keys_and_tables() {
        for i in 0..1100 {
            let owner = if i % 2 == 0 { "even" } else { "odd" };
            insert(&note(owner, &i.to_string())).unwrap();
        }
        insert(&Other { n: 1 }).unwrap();
        kv::set(b"note/by-owner/even", b"index").unwrap();
        kv::set(b"note/zzz", b"not json").unwrap();
        let all = list::<Note>().unwrap();
        assert_eq!(all.len(), 1100);
        assert!(all.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(all[1099], (1100, note("odd", "1099")));
        let even = find_by::<Note>("owner", "even").unwrap();
        assert_eq!(even.len(), 550);
        assert!(even.iter().all(|(_, n)| n.owner == "even"));
        assert!(find_by::<Note>("owner", "nobody").unwrap().is_empty());
        assert!(find_by::<Note>("missing", 1).unwrap().is_empty());
        assert_eq!(list::<Other>().unwrap(), vec![(1, Other { n: 1 })]);
    }

    #[test]
    fn one_field_is_read_as_a_whole_parse_would_read_it() {
        let table: [(&str, Option<serde_json::Value>); 9] = [
            (r#"{"owner":"ann","text":"x"}"#, Some(json!("ann"))),
            (r#"{"text":{"owner":"nested"},"owner":1}"#, Some(json!(1))),
            (r#"{"owner":"first","owner":"last"}"#, Some(json!("last"))),
            (r#"{"\u006fwner":"escaped"}"#, Some(json!("escaped"))),
            (r#"{"owner":{"a":[1,2]}}"#, Some(json!({"a": [1, 2]}))),
            (r#"{"text":"x"}"#, None),
            (r#"[1,2]"#, None),
            (r#""owner""#, None),
            (r#" {"owner":null} "#, Some(json!(null))),
        ];
        for (text, want) in table {
            let whole: serde_json::Value = serde_json::from_str(text).unwrap();
            assert_eq!(whole.get("owner").cloned(), want, "{text}");
            assert_eq!(
                field_of("k", text.as_bytes(), "owner").unwrap(),
                want,
                "{text}"
            );
        }
        for bad in ["{", r#"{"owner":1} x"#, "not json"] {
            let err = field_of("k", bad.as_bytes(), "owner").unwrap_err();
            assert!(
                matches!(err, ModelError::Corrupt { ref key, .. } if key == "k"),
                "{bad}"
            );
        }
    }

    #[test]
    fn errors() {
        kv::set(key::<Note>(5).as_bytes(), b"{").unwrap();
        let err = get::<Note>(5).unwrap_err();
        assert!(
            matches!(err, ModelError::Corrupt { ref key, .. } if key == "note/00000000000000000005")
        );
        assert!(list::<Note>().is_err());
        kv::set(b"note/#next", b"x").unwrap();
        assert_eq!(
            insert(&note("a", "b")),
            Err(ModelError::Kv(KvError::NotAnInteger))
        );
        kv::set(b"note/#next", b"-3").unwrap();
        assert_eq!(insert(&note("a", "b")), Err(ModelError::BadId(-2)));
        let big = note("a", &"x".repeat(1024 * 1024));
        kv::set(b"note/#next", b"0").unwrap();
        assert_eq!(insert(&big), Err(ModelError::Kv(KvError::ValueTooLarge)));
    }
}
