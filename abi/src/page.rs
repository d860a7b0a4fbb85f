//! The buffers of `kv_list` and `kv_get_many` (ABI §6.2), all little-endian: a key page is `[count: u32]`, `count` times `[len: u32][key]`, then `[has_next: u32]` and, if 1, `[len: u32][next]`; a key list is `[count: u32]` and `count` times `[len: u32][key]`; a value list is `[count: u32]` and `count` times `[0: u32]` (absent) or `[1: u32][len: u32][value]`.

/// One page of keys, as `kv_list` returns it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPage {
    /// The keys of this page, ascending.
    pub keys: Vec<Vec<u8>>,
    /// The last key of this page when more may follow; pass it as `after`
    /// to read the next page. `None` at the end.
    pub next: Option<Vec<u8>>,
}

/// Encodes a page of `keys` and its `next` cursor.
///
/// # Panics
///
/// If there are more than `u32::MAX` keys or a key is 4 GiB or more, which
/// the storage limits rule out.
pub fn encode_key_page<K: AsRef<[u8]>>(keys: &[K], next: Option<&[u8]>) -> Vec<u8> {
    fn put_u32(out: &mut Vec<u8>, n: usize) {
        let n = u32::try_from(n).expect("a page and its keys are smaller than 4 GiB");
        out.extend_from_slice(&n.to_le_bytes());
    }
    let mut out = Vec::new();
    put_u32(&mut out, keys.len());
    for key in keys {
        let key = key.as_ref();
        put_u32(&mut out, key.len());
        out.extend_from_slice(key);
    }
    match next {
        Some(next) => {
            put_u32(&mut out, 1);
            put_u32(&mut out, next.len());
            out.extend_from_slice(next);
        }
        None => put_u32(&mut out, 0),
    }
    out
}

/// Decodes a `kv_list` buffer; `None` if it is malformed.
pub fn decode_key_page(buf: &[u8]) -> Option<KeyPage> {
    let mut rest = buf;
    let count = take_u32(&mut rest)?;
    let mut keys = Vec::new();
    for _ in 0..count {
        keys.push(take_bytes(&mut rest)?);
    }
    let next = match take_u32(&mut rest)? {
        0 => None,
        1 => Some(take_bytes(&mut rest)?),
        _ => return None,
    };
    rest.is_empty().then_some(KeyPage { keys, next })
}

fn put_u32(out: &mut Vec<u8>, n: usize) {
    let n = u32::try_from(n).expect("a buffer and its parts are smaller than 4 GiB");
    out.extend_from_slice(&n.to_le_bytes());
}

/// Encodes the keys a guest passes to `kv_get_many`.
///
/// # Panics
///
/// If there are more than `u32::MAX` keys or a key is 4 GiB or more.
pub fn encode_key_list<K: AsRef<[u8]>>(keys: &[K]) -> Vec<u8> {
    let mut out = Vec::new();
    put_u32(&mut out, keys.len());
    for key in keys {
        put_u32(&mut out, key.as_ref().len());
        out.extend_from_slice(key.as_ref());
    }
    out
}

/// Decodes a key list; `None` if it is malformed.
pub fn decode_key_list(buf: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut rest = buf;
    let count = take_u32(&mut rest)?;
    // Each key takes at least its 4-byte length: a count beyond that is a lie.
    if usize::try_from(count).ok()? > rest.len() / 4 {
        return None;
    }
    let mut keys = Vec::new();
    for _ in 0..count {
        keys.push(take_bytes(&mut rest)?);
    }
    rest.is_empty().then_some(keys)
}

/// Encodes the values `kv_get_many` answers, in the order of its keys.
///
/// # Panics
///
/// If there are more than `u32::MAX` values or a value is 4 GiB or more.
pub fn encode_value_list<V: AsRef<[u8]>>(values: &[Option<V>]) -> Vec<u8> {
    let mut out = Vec::new();
    put_u32(&mut out, values.len());
    for value in values {
        match value {
            None => put_u32(&mut out, 0),
            Some(v) => {
                put_u32(&mut out, 1);
                put_u32(&mut out, v.as_ref().len());
                out.extend_from_slice(v.as_ref());
            }
        }
    }
    out
}

/// Decodes a value list; `None` if it is malformed.
pub fn decode_value_list(buf: &[u8]) -> Option<Vec<Option<Vec<u8>>>> {
    let mut rest = buf;
    let count = take_u32(&mut rest)?;
    if usize::try_from(count).ok()? > rest.len() / 4 {
        return None;
    }
    let mut values = Vec::new();
    for _ in 0..count {
        values.push(match take_u32(&mut rest)? {
            0 => None,
            1 => Some(take_bytes(&mut rest)?),
            _ => return None,
        });
    }
    rest.is_empty().then_some(values)
}

/// Reads a `u32 LE` from the front of `rest`.
fn take_u32(rest: &mut &[u8]) -> Option<u32> {
    let (n, tail) = rest.split_first_chunk::<4>()?;
    *rest = tail;
    Some(u32::from_le_bytes(*n))
}

/// Reads `[len: u32 LE][len bytes]` from the front of `rest`.
fn take_bytes(rest: &mut &[u8]) -> Option<Vec<u8>> {
    let len = usize::try_from(take_u32(rest)?).ok()?;
    if rest.len() < len {
        return None;
    }
    let (bytes, tail) = rest.split_at(len);
    *rest = tail;
    Some(bytes.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_decoding() {
        let table: [(&[u8], Option<KeyPage>); 6] = [
            (b"\0\0\0\0\0\0\0\0", Some(KeyPage::default())),
            (
                b"\x01\0\0\0\x01\0\0\0a\x01\0\0\0\x01\0\0\0a",
                Some(KeyPage {
                    keys: vec![b"a".to_vec()],
                    next: Some(b"a".to_vec()),
                }),
            ),
            (b"", None),
            (b"\x01\0\0\0\x05\0\0\0a\0\0\0\0", None),
            (b"\0\0\0\0\x02\0\0\0", None),
            (b"\0\0\0\0\0\0\0\0x", None),
        ];
        for (buf, want) in table {
            assert_eq!(decode_key_page(buf), want, "{buf:?}");
        }
    }

    #[test]
    fn key_and_value_lists_decode_and_round_trip() {
        let keys: [Vec<Vec<u8>>; 3] =
            [vec![], vec![Vec::new()], vec![b"a".to_vec(), vec![0, 0xff]]];
        for list in keys {
            assert_eq!(decode_key_list(&encode_key_list(&list)), Some(list));
        }
        let values: [Vec<Option<Vec<u8>>>; 3] = [
            vec![],
            vec![None],
            vec![Some(Vec::new()), None, Some(b"v".to_vec())],
        ];
        for list in values {
            assert_eq!(decode_value_list(&encode_value_list(&list)), Some(list));
        }
        let malformed: [&[u8]; 6] = [
            b"",
            b"\x01\0\0\0",
            b"\x01\0\0\0\x05\0\0\0a",
            b"\0\0\0\0x",
            b"\xff\xff\xff\xff\0\0\0\0",
            b"\x01\0\0\0\x01\0\0\0ab",
        ];
        for buf in malformed {
            assert_eq!(decode_key_list(buf), None, "{buf:?}");
        }
        let malformed: [&[u8]; 4] = [
            b"\x01\0\0\0\x02\0\0\0",
            b"\x01\0\0\0\x01\0\0\0\x02\0\0\0a",
            b"\x02\0\0\0\0\0\0\0",
            b"\xff\xff\xff\xff",
        ];
        for buf in malformed {
            assert_eq!(decode_value_list(buf), None, "{buf:?}");
        }
    }

    #[test]
    fn pages_round_trip() {
        let table = [
            KeyPage::default(),
            KeyPage {
                keys: vec![Vec::new(), b"a".to_vec(), vec![0, 0xff]],
                next: None,
            },
            KeyPage {
                keys: vec![b"p/000".to_vec(), b"p/001".to_vec()],
                next: Some(b"p/001".to_vec()),
            },
            KeyPage {
                keys: vec![],
                next: Some(Vec::new()),
            },
        ];
        for page in table {
            let buf = encode_key_page(&page.keys, page.next.as_deref());
            assert_eq!(decode_key_page(&buf), Some(page));
        }
        assert_eq!(
            encode_key_page(&[b"ab"], Some(b"ab")),
            b"\x01\0\0\0\x02\0\0\0ab\x01\0\0\0\x02\0\0\0ab"
        );
    }
}
