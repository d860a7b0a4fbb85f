//! The user, todo and weibo apps through the real host: accounts, sessions, guards, escaping, bad input, restarts.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::support::{Resp, TestServer, guests};

/// The three apps as the root routes.json serves them, with `static/` copied in.
pub fn apps_routes(dir: &Path) -> Value {
    let statics = dir.join("static");
    std::fs::create_dir_all(&statics).unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../static");
    for entry in std::fs::read_dir(root).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), statics.join(entry.file_name())).unwrap();
    }
    json!({
        "apps": {
            // Password hashing (argon2id) is slow on purpose: a busy CI machine
            // must not turn it into a 504.
            "user": { "module": guests::USER, "limits": { "cpu_time": "5s" }, "grants": { "host": ["log", "storage", "sessions"] } },
            "todo": { "module": guests::TODO, "login_required": true, "grants": { "host": ["log", "storage"] } },
            "weibo": { "module": guests::WEIBO, "grants": { "host": ["log", "storage"] } }
        },
        "routes": [
            { "path": "/user/...", "app": "user" },
            { "path": "/todo/...", "app": "todo" },
            { "path": "/weibo/...", "app": "weibo" },
            { "path": "/static/...", "static": "static" }
        ]
    })
}

fn start(data: Option<PathBuf>) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let routes = apps_routes(dir.path());
    TestServer::start_full(dir, routes, |_| {}, data)
}

fn encode(fields: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish()
}

/// A POST of a form, optionally with a session cookie and extra headers.
fn post(
    server: &TestServer,
    path: &str,
    cookie: Option<&str>,
    fields: &[(&str, &str)],
    extra: &str,
) -> Resp {
    let body = encode(fields);
    let cookie = cookie
        .map(|c| format!("Cookie: {c}\r\n"))
        .unwrap_or_default();
    server.request(&format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\n{cookie}{extra}Content-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ))
}

fn get(server: &TestServer, path: &str, cookie: Option<&str>, extra: &str) -> Resp {
    let cookie = cookie
        .map(|c| format!("Cookie: {c}\r\n"))
        .unwrap_or_default();
    server.request(&format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\n{cookie}{extra}Connection: close\r\n\r\n"
    ))
}

const JSON: &str = "Accept: application/json\r\n";

/// The session cookie a response sets, as `name=value`.
fn session_cookie(resp: &Resp) -> Option<String> {
    resp.headers_all("set-cookie")
        .into_iter()
        .find(|c| c.starts_with("wasmhost_session=") && !c.starts_with("wasmhost_session=;"))
        .map(|c| c.split(';').next().unwrap().to_owned())
}

/// Registers and logs in; returns the session cookie.
pub(crate) fn sign_up(server: &TestServer, name: &str) -> String {
    let resp = post(
        server,
        "/user/register",
        None,
        &[("username", name), ("password", "correct horse battery")],
        "",
    );
    assert!(
        resp.status == 303 || resp.status == 302,
        "register {name}: {} {}",
        resp.status,
        resp.text()
    );
    let resp = post(
        server,
        "/user/login",
        None,
        &[("username", name), ("password", "correct horse battery")],
        "",
    );
    assert!(
        resp.status == 302 || resp.status == 303,
        "login {name}: {} {}",
        resp.status,
        resp.text()
    );
    assert_eq!(resp.header("location"), Some("/todo/index"));
    let set = resp
        .headers_all("set-cookie")
        .into_iter()
        .find(|c| c.starts_with("wasmhost_session="))
        .expect("a session cookie")
        .to_owned();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Lax") && set.contains("Path=/"),
        "{set}"
    );
    session_cookie(&resp).unwrap()
}

fn todos(server: &TestServer, cookie: &str) -> Vec<Value> {
    let resp = get(server, "/todo/index", Some(cookie), JSON);
    assert_eq!(resp.status, 200, "{}", resp.text());
    serde_json::from_slice::<Value>(&resp.body)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn accounts_register_log_in_and_out() {
    let server = start(None);
    let cookie = sign_up(&server, "alice");
    // Duplicates are refused, whatever the case.
    let dup = post(
        &server,
        "/user/register",
        None,
        &[("username", "Alice"), ("password", "another password")],
        "",
    );
    assert!(dup.status == 409 || dup.status == 400, "{}", dup.status);
    assert!(
        dup.text().to_lowercase().contains("taken") || dup.text().to_lowercase().contains("exists"),
        "{}",
        dup.text()
    );
    // A wrong password and an unknown user get the same answer.
    let wrong = post(
        &server,
        "/user/login",
        None,
        &[("username", "alice"), ("password", "wrong password")],
        JSON,
    );
    let unknown = post(
        &server,
        "/user/login",
        None,
        &[("username", "nobody"), ("password", "wrong password")],
        JSON,
    );
    assert_eq!(wrong.status, unknown.status);
    assert_eq!(wrong.body, unknown.body);
    assert!(session_cookie(&wrong).is_none());
    // The profile shows who is signed in; the guest never sees the token.
    let profile = get(&server, "/user/profile", Some(&cookie), "");
    assert_eq!(profile.status, 200);
    assert!(profile.text().contains("alice"));
    assert!(
        !profile
            .text()
            .contains(cookie.trim_start_matches("wasmhost_session="))
    );
    // Log out: the cookie is cleared and the old token is void.
    let out = post(&server, "/user/logout", Some(&cookie), &[], "");
    assert!(out.status == 302 || out.status == 303, "{}", out.status);
    assert!(
        out.headers_all("set-cookie")
            .iter()
            .any(|c| c.starts_with("wasmhost_session=;") && c.contains("Max-Age=0"))
    );
    assert_eq!(get(&server, "/todo/index", Some(&cookie), "").status, 302);
}

#[test]
fn todos_are_private_to_their_owner() {
    let server = start(None);
    let alice = sign_up(&server, "alice");
    let bob = sign_up(&server, "bob");

    let resp = post(
        &server,
        "/todo/add",
        Some(&alice),
        &[("title", "buy milk")],
        "",
    );
    assert_eq!(resp.status, 303, "{}", resp.text());
    let list = todos(&server, &alice);
    assert_eq!(list.len(), 1);
    let id = list[0]["id"].as_i64().expect("integer id");
    assert_eq!(list[0]["title"], "buy milk");
    assert_eq!(list[0]["done"], false);
    assert!(list[0]["created_at"].is_string() && list[0]["updated_at"].is_string());
    assert!(todos(&server, &bob).is_empty(), "bob sees alice's todos");

    let id_s = id.to_string();
    let edit = get(&server, &format!("/todo/edit?id={id}"), Some(&alice), "");
    assert_eq!(edit.status, 200);
    assert!(edit.text().contains("buy milk"));
    let resp = post(
        &server,
        "/todo/update",
        Some(&alice),
        &[("id", &id_s), ("title", "buy oat milk"), ("done", "on")],
        "",
    );
    assert_eq!(resp.status, 303, "{}", resp.text());
    let list = todos(&server, &alice);
    assert_eq!(list[0]["title"], "buy oat milk");
    assert_eq!(list[0]["done"], true);

    // Another user: 403 on every path to the todo (the old same_user_required).
    assert_eq!(
        get(&server, &format!("/todo/edit?id={id}"), Some(&bob), "").status,
        403
    );
    let table: &[(&str, &[(&str, &str)])] = &[
        (
            "/todo/update",
            &[("id", &id_s), ("title", "hijacked"), ("done", "false")],
        ),
        ("/todo/delete", &[("id", &id_s)]),
    ];
    for (path, fields) in table {
        assert_eq!(
            post(&server, path, Some(&bob), fields, "").status,
            403,
            "{path}"
        );
    }
    assert_eq!(todos(&server, &alice)[0]["title"], "buy oat milk");

    let resp = post(&server, "/todo/delete", Some(&alice), &[("id", &id_s)], "");
    assert_eq!(resp.status, 303);
    assert!(todos(&server, &alice).is_empty());
}

#[test]
fn guards_answer_before_the_guest() {
    let server = start(None);
    let alice = sign_up(&server, "alice");
    let resp = get(&server, "/todo/index", None, "");
    assert_eq!(resp.status, 302);
    assert_eq!(
        resp.header("location"),
        Some("/user/login?next=%2Ftodo%2Findex")
    );
    assert_eq!(get(&server, "/todo/index", None, JSON).status, 401);
    // A cross-site form post is refused even with a valid session.
    let resp = post(
        &server,
        "/todo/add",
        Some(&alice),
        &[("title", "csrf")],
        "Origin: http://evil.example\r\n",
    );
    assert_eq!(resp.status, 403);
    let resp = post(
        &server,
        "/todo/add",
        Some(&alice),
        &[("title", "same site")],
        "Origin: http://localhost\r\n",
    );
    assert_eq!(resp.status, 303);
    let titles: Vec<Value> = todos(&server, &alice)
        .iter()
        .map(|t| t["title"].clone())
        .collect();
    assert_eq!(titles, [json!("same site")]);
}

#[test]
fn bad_input_is_a_clear_400_never_a_500() {
    let server = start(None);
    let alice = sign_up(&server, "alice");
    let long = "x".repeat(1000);
    let posts: &[(&str, Vec<(&str, &str)>)] = &[
        ("/todo/add", vec![("title", "")]),
        ("/todo/add", vec![]),
        ("/todo/add", vec![("title", long.as_str())]),
        ("/todo/update", vec![("id", "abc"), ("title", "x")]),
        ("/todo/delete", vec![("id", "-1x")]),
        ("/weibo/add", vec![("content", "")]),
        ("/weibo/add", vec![("content", long.as_str())]),
        (
            "/weibo/comment/add",
            vec![("weibo_id", "nope"), ("content", "x")],
        ),
        (
            "/user/register",
            vec![("username", "a"), ("password", "correct horse battery")],
        ),
        (
            "/user/register",
            vec![("username", "valid_name"), ("password", "short")],
        ),
    ];
    for (path, fields) in posts {
        let resp = post(&server, path, Some(&alice), fields, "");
        assert_eq!(resp.status, 400, "{path} {fields:?}: {}", resp.text());
        assert!(!resp.text().is_empty());
        let resp = post(&server, path, Some(&alice), fields, JSON);
        assert_eq!(resp.status, 400, "{path} {fields:?} (JSON)");
        let v: Value = serde_json::from_slice(&resp.body)
            .unwrap_or_else(|_| panic!("{path}: not JSON: {}", resp.text()));
        assert!(v["error"].is_string(), "{path}: {v}");
    }
    for path in ["/todo/edit?id=abc", "/todo/edit", "/weibo/edit?id=1.5"] {
        let status = get(&server, path, Some(&alice), "").status;
        assert_eq!(status, 400, "{path}");
    }
}

/// Failed logins allowed per (account, client) per window: the user app's
/// `throttle::LIMIT_ACCOUNT_CLIENT`.
const LOGIN_FAILURES_ALLOWED: usize = 5;
/// The user app's `throttle::WINDOW_SECS`.
const LOGIN_WINDOW_SECS: u64 = 15 * 60;

#[test]
fn wrong_passwords_until_429_then_the_right_one_is_refused_while_throttled() {
    let server = start(None);
    sign_up(&server, "alice");
    let attempt = |password: &str, extra: &str| {
        post(
            &server,
            "/user/login",
            None,
            &[("username", "alice"), ("password", password)],
            extra,
        )
    };
    // A successful login sets the device cookie.
    let resp = attempt("correct horse battery", "");
    assert_eq!(resp.status, 302);
    let device = resp
        .headers_all("set-cookie")
        .into_iter()
        .find(|c| c.starts_with("user_device="))
        .expect("a device cookie")
        .to_owned();
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/user"] {
        assert!(device.contains(attribute), "{device}");
    }

    // The windows are the server's clock: should one end between the 429 and
    // the right password (which its `Retry-After` then foretold), go again in
    // the new window.
    for round in 1..=2 {
        let mut failures = 0;
        let (retry_after, since) = loop {
            let resp = attempt("wrong password", JSON);
            if resp.status == 429 {
                break (throttled_for(&resp), std::time::Instant::now());
            }
            assert_eq!(resp.status, 401, "{}", resp.text());
            failures += 1;
            assert!(
                failures <= 2 * LOGIN_FAILURES_ALLOWED,
                "no 429 after {failures} failures"
            );
        };
        assert!(failures <= LOGIN_FAILURES_ALLOWED, "{failures} failures");
        let resp = attempt("correct horse battery", "");
        if resp.status == 429 {
            let retry = throttled_for(&resp);
            assert!(retry <= retry_after, "{retry} > {retry_after}");
            assert!(
                resp.text().contains("too many failed logins"),
                "{}",
                resp.text()
            );
            assert!(resp.text().contains("id=\"login-form\""));
            assert!(session_cookie(&resp).is_none());
            assert!(resp.header("location").is_none());
            return;
        }
        assert_eq!(resp.status, 302, "round {round}: {}", resp.text());
        assert!(
            since.elapsed().as_secs() + 1 >= retry_after,
            "round {round}: signed in {}s into a {retry_after}s throttle",
            since.elapsed().as_secs()
        );
    }
    panic!("the window ended during both rounds");
}

/// The `Retry-After` of a throttled login, checked against the window and,
/// for JSON, the body.
fn throttled_for(resp: &Resp) -> u64 {
    let retry: u64 = resp
        .header("retry-after")
        .expect("a Retry-After header")
        .parse()
        .expect("Retry-After in seconds");
    assert!((1..=LOGIN_WINDOW_SECS).contains(&retry), "{retry}");
    if resp.header("content-type") == Some("application/json") {
        let v: Value = serde_json::from_slice(&resp.body).unwrap();
        assert_eq!(v["status"], 429, "{v}");
        assert!(v["error"].as_str().unwrap().contains("try again in"), "{v}");
    }
    retry
}

#[test]
fn weibo_posts_comments_permissions_and_escaping() {
    let server = start(None);
    let alice = sign_up(&server, "alice");
    let bob = sign_up(&server, "bob");
    let resp = post(
        &server,
        "/weibo/add",
        Some(&alice),
        &[("content", "<script>alert(1)</script> hi")],
        "",
    );
    assert_eq!(resp.status, 303, "{}", resp.text());
    // Reading needs no login; markup is escaped.
    let page = get(&server, "/weibo/index", None, "");
    assert_eq!(page.status, 200);
    assert!(
        page.text().contains("&lt;script&gt;alert(1)&lt;"),
        "{}",
        page.text()
    );
    assert!(!page.text().contains("<script>alert(1)"));
    let posts: Value =
        serde_json::from_slice(&get(&server, "/weibo/index", None, JSON).body).unwrap();
    let post_id = posts[0]["id"].as_i64().unwrap().to_string();
    assert_eq!(posts[0]["user"], "alice");
    assert_eq!(posts[0]["content"], "<script>alert(1)</script> hi");

    // Anonymous mutations need a login.
    let resp = post(&server, "/weibo/add", None, &[("content", "anon")], "");
    assert!(resp.status == 302 || resp.status == 401, "{}", resp.status);

    // Comments: bob on alice's post.
    let resp = post(
        &server,
        "/weibo/comment/add",
        Some(&bob),
        &[("weibo_id", &post_id), ("content", "nice")],
        "",
    );
    assert_eq!(resp.status, 303, "{}", resp.text());
    let resp = post(
        &server,
        "/weibo/comment/add",
        Some(&bob),
        &[("weibo_id", &post_id), ("content", "second")],
        "",
    );
    assert_eq!(resp.status, 303);
    let posts: Value =
        serde_json::from_slice(&get(&server, "/weibo/index", None, JSON).body).unwrap();
    let comments = posts[0]["comments"].as_array().unwrap().clone();
    assert_eq!(comments.len(), 2);
    assert_eq!(comments[0]["user"], "bob");
    let first = comments[0]["id"].as_i64().unwrap().to_string();
    let second = comments[1]["id"].as_i64().unwrap().to_string();

    // Only the author edits or deletes a post.
    assert_eq!(
        post(
            &server,
            "/weibo/update",
            Some(&bob),
            &[("id", &post_id), ("content", "mine now")],
            ""
        )
        .status,
        403
    );
    assert_eq!(
        post(
            &server,
            "/weibo/delete",
            Some(&bob),
            &[("id", &post_id)],
            ""
        )
        .status,
        403
    );
    assert_eq!(
        get(
            &server,
            &format!("/weibo/edit?id={post_id}"),
            Some(&bob),
            ""
        )
        .status,
        403
    );
    let resp = post(
        &server,
        "/weibo/update",
        Some(&alice),
        &[("id", &post_id), ("content", "edited")],
        "",
    );
    assert_eq!(resp.status, 303);
    // A comment: its author or the post's author may delete it.
    let carol = sign_up(&server, "carol");
    assert_eq!(
        post(
            &server,
            "/weibo/comment/delete",
            Some(&carol),
            &[("id", &first)],
            ""
        )
        .status,
        403
    );
    assert_eq!(
        post(
            &server,
            "/weibo/comment/delete",
            Some(&bob),
            &[("id", &first)],
            ""
        )
        .status,
        303
    );
    assert_eq!(
        post(
            &server,
            "/weibo/comment/delete",
            Some(&alice),
            &[("id", &second)],
            ""
        )
        .status,
        303
    );
    let posts: Value =
        serde_json::from_slice(&get(&server, "/weibo/index", None, JSON).body).unwrap();
    assert_eq!(posts[0]["content"], "edited");
    assert!(posts[0]["comments"].as_array().unwrap().is_empty());
    assert_eq!(
        post(
            &server,
            "/weibo/delete",
            Some(&alice),
            &[("id", &post_id)],
            ""
        )
        .status,
        303
    );
    let posts: Value =
        serde_json::from_slice(&get(&server, "/weibo/index", None, JSON).body).unwrap();
    assert!(posts.as_array().unwrap().is_empty());
}

#[test]
fn data_and_sessions_survive_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let server = start(Some(data.path().to_owned()));
    let alice = sign_up(&server, "alice");
    assert_eq!(
        post(
            &server,
            "/todo/add",
            Some(&alice),
            &[("title", "persist me")],
            ""
        )
        .status,
        303
    );
    server.stop();

    let server = start(Some(data.path().to_owned()));
    let list = todos(&server, &alice);
    assert_eq!(list.len(), 1, "todo lost across restart");
    assert_eq!(list[0]["title"], "persist me");
    let dup = post(
        &server,
        "/user/register",
        None,
        &[("username", "alice"), ("password", "correct horse battery")],
        "",
    );
    assert!(
        dup.status == 409 || dup.status == 400,
        "account lost across restart: {}",
        dup.status
    );
}
