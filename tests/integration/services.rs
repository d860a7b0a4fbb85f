//! Host services through the real server: per-app storage, its limits and durability, login-required routes, the Origin check.

use serde_json::json;
use wasmhost_abi::status;

use crate::guests::{RAW_WAT, one_app};
use crate::support::{TestServer, wat_module};

/// The storage probe guest (see the file for its commands).
const KV_PROBE: &str = include_str!("../guests/kv_probe.wat");

/// Two apps running the same storage probe, each granted storage.
fn two_probes(dir: &std::path::Path) -> serde_json::Value {
    let module = wat_module(dir, "kv_probe", KV_PROBE);
    json!({
        "apps": {
            "alpha": { "module": module, "grants": { "host": ["log", "storage"] } },
            "beta": { "module": module, "grants": { "host": ["log", "storage"] } }
        },
        "routes": [
            { "path": "/alpha", "app": "alpha" },
            { "path": "/beta", "app": "beta" }
        ]
    })
}

/// Sends a probe command; returns (status code the guest saw, value bytes).
fn probe(server: &TestServer, app: &str, command: &[u8]) -> (u8, Vec<u8>) {
    let mut c = server.connect();
    c.send(
        format!(
            "POST /{app} HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n",
            command.len()
        )
        .as_bytes(),
    );
    c.send(command);
    let resp = c.read_response();
    assert_eq!(resp.status, 200, "{}", resp.text());
    (resp.body[0] - b'0', resp.body[1..].to_vec())
}

/// The statuses the probe reports, as the ABI defines them.
const OK: u8 = status::OK as u8;
const KEY_TOO_LARGE: u8 = status::KEY_TOO_LARGE as u8;
const VALUE_TOO_LARGE: u8 = status::VALUE_TOO_LARGE as u8;
const ABSENT: u8 = status::ABSENT as u8;

#[test]
fn each_app_sees_only_its_own_keys() {
    let dir = tempfile::tempdir().unwrap();
    let routes = two_probes(dir.path());
    let server = TestServer::start_in(dir, routes, |_| {});
    let binary: Vec<u8> = (0..=255u8).collect();
    let mut set = b"s".to_vec();
    set.extend_from_slice(&binary);
    assert_eq!(probe(&server, "alpha", &set).0, OK);
    assert_eq!(probe(&server, "alpha", b"g"), (OK, binary.clone()));
    // The same key in the other app is another entry.
    assert_eq!(probe(&server, "beta", b"g"), (ABSENT, vec![]));
    assert_eq!(probe(&server, "beta", b"sbeta's").0, OK);
    assert_eq!(probe(&server, "alpha", b"g"), (OK, binary));
    assert_eq!(probe(&server, "beta", b"g"), (OK, b"beta's".to_vec()));
    assert_eq!(probe(&server, "beta", b"d").0, OK);
    assert_eq!(probe(&server, "beta", b"d").0, ABSENT);
    assert_eq!(probe(&server, "alpha", b"g").0, OK);
}

#[test]
fn get_many_reads_several_keys_of_its_own_app_in_one_call_and_refuses_bad_lists() {
    use wasmhost_abi::limits::MAX_GET_MANY_KEYS;
    use wasmhost_abi::{decode_value_list, encode_key_list};
    let dir = tempfile::tempdir().unwrap();
    let routes = two_probes(dir.path());
    let server = TestServer::start_in(dir, routes, |_| {});
    assert_eq!(probe(&server, "alpha", b"salpha's").0, OK);
    assert_eq!(probe(&server, "beta", b"sbeta's").0, OK);
    let many = |app: &str, keys: &[&[u8]]| {
        let mut command = b"m".to_vec();
        command.extend(encode_key_list(keys));
        let (st, buf) = probe(&server, app, &command);
        assert_eq!(st, OK, "kv_get_many for {app}");
        decode_value_list(&buf).expect("a value list")
    };
    // The key "k" is each app's own; "nothing" is absent; order is kept.
    assert_eq!(
        many("alpha", &[b"nothing", b"k", b"k"]),
        [None, Some(b"alpha's".to_vec()), Some(b"alpha's".to_vec())]
    );
    assert_eq!(many("beta", &[b"k"]), [Some(b"beta's".to_vec())]);
    assert_eq!(many("beta", &[]), Vec::<Option<Vec<u8>>>::new());
    // A list that does not decode, too many keys, a key too long.
    let bad_argument = status::BAD_ARGUMENT as u8;
    assert_eq!(probe(&server, "alpha", b"m\x02\0\0\0").0, bad_argument);
    let too_many: Vec<&[u8]> = vec![b"k"; MAX_GET_MANY_KEYS + 1];
    let mut command = b"m".to_vec();
    command.extend(encode_key_list(&too_many));
    assert_eq!(probe(&server, "alpha", &command).0, bad_argument);
    let long = vec![b'k'; 2000];
    let mut command = b"m".to_vec();
    command.extend(encode_key_list(&[&long[..]]));
    assert_eq!(probe(&server, "alpha", &command).0, KEY_TOO_LARGE);
}

#[test]
fn huge_keys_and_values_are_refused_to_the_guest_only() {
    let dir = tempfile::tempdir().unwrap();
    let routes = two_probes(dir.path());
    let server = TestServer::start_in(dir, routes, |_| {});
    let mut huge_value = b"s".to_vec();
    huge_value.resize(2 * 1024 * 1024, b'v');
    assert_eq!(probe(&server, "alpha", &huge_value).0, VALUE_TOO_LARGE);
    let mut huge_key = b"K".to_vec();
    huge_key.resize(4096, b'k');
    assert_eq!(probe(&server, "alpha", &huge_key).0, KEY_TOO_LARGE);
    // Nothing was stored, and the host is fine.
    assert_eq!(probe(&server, "alpha", b"g").0, ABSENT);
    assert_eq!(probe(&server, "alpha", b"sok").0, OK);
}

#[test]
fn stored_data_survives_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let routes = two_probes(dir.path());
    let server = TestServer::start_full(dir, routes.clone(), |_| {}, Some(data.path().to_owned()));
    assert_eq!(probe(&server, "alpha", b"sdurable").0, OK);
    server.stop();
    let dir = tempfile::tempdir().unwrap();
    let routes = two_probes(dir.path());
    let server = TestServer::start_full(dir, routes, |_| {}, Some(data.path().to_owned()));
    assert_eq!(probe(&server, "alpha", b"g"), (OK, b"durable".to_vec()));
}

#[test]
fn storage_needs_its_grant() {
    let dir = tempfile::tempdir().unwrap();
    let module = wat_module(dir.path(), "kv_probe", KV_PROBE);
    let routes = json!({
        "apps": { "nogrant": { "module": module } },
        "routes": [{ "path": "/x", "app": "nogrant" }]
    });
    std::fs::write(dir.path().join("routes.json"), routes.to_string()).unwrap();
    let result = wasmhost::start(wasmhost::Options {
        routes: dir.path().join("routes.json"),
        server: wasmhost::net::ServerConfig::new("127.0.0.1:0".parse().unwrap()),
        max_body: wasmhost::limits::DEFAULT_MAX_BODY,
        data_dir: None,
        redis: None,
    });
    let err = format!(
        "{:#}",
        result.err().expect("an ungranted import must be refused")
    );
    assert!(err.contains("kv_get"), "{err}");
}

#[test]
fn login_required_routes_send_anonymous_users_to_the_login_page() {
    let dir = tempfile::tempdir().unwrap();
    let module = wat_module(dir.path(), "raw", RAW_WAT);
    let routes = json!({
        "apps": { "app": { "module": module, "login_required": true } },
        "routes": [
            { "path": "/app/...", "app": "app" },
            { "path": "/open", "app": "app", "login_required": false }
        ]
    });
    let server = TestServer::start_in(dir, routes, |_| {});
    let resp = server.get("/app/list?page=2");
    assert_eq!(resp.status, 302);
    assert_eq!(
        resp.header("location"),
        Some("/user/login?next=%2Fapp%2Flist%3Fpage%3D2")
    );
    let resp = server.request(
        "GET /app/x HTTP/1.1\r\nHost: h\r\nAccept: application/json\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(resp.status, 401);
    assert_eq!(resp.header("content-type"), Some("application/json"));
    // A forged session cookie is nobody.
    let forged = "ab".repeat(32);
    let resp = server.request(&format!(
        "GET /app/x HTTP/1.1\r\nHost: h\r\nCookie: wasmhost_session={forged}\r\nConnection: close\r\n\r\n"
    ));
    assert_eq!(resp.status, 302);
    // A route may opt out.
    assert_eq!(server.get("/open").status, 201);
}

#[test]
fn cross_site_mutations_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let module = wat_module(dir.path(), "raw", RAW_WAT);
    let server = TestServer::start_in(dir, one_app(&module), |_| {});
    let host = server.addr.to_string();
    let table = [
        ("POST", Some("http://evil.example".to_owned()), 403),
        ("DELETE", Some("http://evil.example".to_owned()), 403),
        ("POST", Some("null".to_owned()), 403),
        ("POST", Some(format!("http://{host}.evil.example")), 403),
        ("POST", Some(format!("http://{host}")), 201),
        ("POST", None, 201),
        ("GET", Some("http://evil.example".to_owned()), 201),
    ];
    for (method, origin, status) in table {
        let origin_header = origin
            .as_ref()
            .map(|o| format!("Origin: {o}\r\n"))
            .unwrap_or_default();
        let resp = server.request(&format!(
            "{method} /app HTTP/1.1\r\nHost: {host}\r\n{origin_header}Content-Length: 0\r\nConnection: close\r\n\r\n"
        ));
        assert_eq!(resp.status, status, "{method} {origin:?}");
    }
}

#[test]
fn compiled_modules_are_cached_in_the_data_dir() {
    let data = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let routes = two_probes(dir.path());
    let server = TestServer::start_full(dir, routes, |_| {}, Some(data.path().to_owned()));
    assert_eq!(probe(&server, "alpha", b"g").0, ABSENT);
    server.stop();
    fn files(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir).map_or(0, |entries| {
            entries
                .flatten()
                .map(|e| {
                    if e.path().is_dir() {
                        files(&e.path())
                    } else {
                        1
                    }
                })
                .sum()
        })
    }
    let cached = files(&data.path().join("cache"));
    assert!(cached >= 1, "no compiled module was cached");
}
