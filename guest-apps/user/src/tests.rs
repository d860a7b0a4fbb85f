//! Unit tests of the user app against the SDK's native storage and session stand-ins.

use guest_sdk::native;

use super::*;

fn body(resp: &Response) -> String {
    String::from_utf8_lossy(&resp.body).into_owned()
}

fn post(target: &str, form: &str, json: bool) -> Response {
    let mut req = Request::new("POST", target)
        .with_header("Content-Type", "application/x-www-form-urlencoded")
        .with_body(form);
    if json {
        req = req.with_header("Accept", "application/json");
    }
    handle(req)
}

#[test]
fn register_then_log_in_and_out() {
    let resp = post(
        "/user/register",
        "username=Alice&password=correct+horse",
        false,
    );
    assert_eq!(resp.status, 303, "{}", body(&resp));
    assert_eq!(
        resp.header("location"),
        Some("/user/login?registered=Alice")
    );
    assert!(body(&handle(Request::new("GET", "/user/login?registered=Alice"))).contains("Alice"));
    let stored = model::get::<Account>(1).unwrap().unwrap();
    assert!(
        stored
            .password_hash
            .starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{}",
        stored.password_hash
    );
    assert!(!stored.password_hash.contains("correct"));

    // Names are case-insensitive for login; the session carries id and name.
    let resp = post(
        "/user/login",
        "username=alice&password=correct+horse",
        false,
    );
    assert_eq!(resp.status, 302, "{}", body(&resp));
    assert_eq!(resp.header("location"), Some(DEFAULT_NEXT));
    let session = native::session();
    let user = session.current.unwrap();
    assert_eq!((user.id.as_str(), user.name.as_str()), ("1", "Alice"));

    let profile = handle(Request::new("GET", "/user/profile").with_user("1", "Alice"));
    assert_eq!(profile.status, 200);
    assert!(body(&profile).contains("Alice") && body(&profile).contains("Member since"));

    let resp = handle(Request::new("POST", "/user/logout").with_user("1", "Alice"));
    assert_eq!(resp.status, 302);
    assert_eq!(resp.header("location"), Some("/user/login"));
    assert_eq!(native::session().current, None);
    assert_eq!(native::session().ended, 1);
}

#[test]
fn login_follows_only_local_next() {
    post("/user/register", "username=bob&password=12345678", false);
    let table = [
        ("%2Ftodo%2Fedit%3Fid%3D3", "/todo/edit?id=3"),
        ("%2Fweibo%2Findex", "/weibo/index"),
        ("%2F%2Fevil.example", DEFAULT_NEXT),
        ("https%3A%2F%2Fevil.example%2F", DEFAULT_NEXT),
        ("%2F%5Cevil.example", DEFAULT_NEXT),
        ("", DEFAULT_NEXT),
    ];
    for (next, want) in table {
        let resp = post(
            "/user/login",
            &format!("username=bob&password=12345678&next={next}"),
            false,
        );
        assert_eq!(resp.status, 302, "{next}");
        assert_eq!(resp.header("location"), Some(want), "{next}");
    }
    let page = body(&handle(Request::new(
        "GET",
        "/user/login?next=%2Ftodo%2Findex",
    )));
    assert!(
        page.contains(r#"name="next" value="&#x2f;todo&#x2f;index""#),
        "{page}"
    );
}

#[test]
fn wrong_password_and_unknown_user_look_the_same() {
    post(
        "/user/register",
        "username=carol&password=secret-pass",
        false,
    );
    for json in [false, true] {
        let wrong = post("/user/login", "username=carol&password=wrong-pass", json);
        let unknown = post("/user/login", "username=nobody&password=wrong-pass", json);
        assert_eq!(wrong.status, 401);
        assert_eq!(unknown.status, 401);
        assert!(body(&wrong).contains(INVALID_LOGIN));
        let normalise = |r: &Response| body(r).replace("carol", "NAME").replace("nobody", "NAME");
        assert_eq!(normalise(&wrong), normalise(&unknown));
    }
    assert_eq!(native::session().started, 0);
}

#[test]
fn duplicate_usernames_are_refused() {
    assert_eq!(
        post("/user/register", "username=dave&password=12345678", false).status,
        303
    );
    for name in ["dave", "DAVE", "Dave"] {
        let resp = post(
            "/user/register",
            &format!("username={name}&password=abcdefgh"),
            false,
        );
        assert_eq!(resp.status, 409, "{name}");
        assert!(body(&resp).contains("is already taken"), "{}", body(&resp));
    }
    let resp = post("/user/register", "username=dave&password=abcdefgh", true);
    assert_eq!(resp.status, 409);
    let v: Value = serde_json::from_slice(&resp.body).unwrap();
    assert!(v["error"].as_str().unwrap().contains("already taken"));
    // The first password still works.
    assert_eq!(
        post("/user/login", "username=dave&password=12345678", false).status,
        302
    );
    assert_eq!(model::list::<Account>().unwrap().len(), 1);
}

#[test]
fn bad_registrations_are_400_with_a_message() {
    let long_name = format!("username={}&password=12345678", "a".repeat(33));
    let long_pass = format!("username=erin&password={}", "p".repeat(129));
    let table = [
        (
            "username=ab&password=12345678",
            "must be 3 to 32 characters",
        ),
        (long_name.as_str(), "must be 3 to 32 characters"),
        ("username=a+b+c&password=12345678", "may only contain"),
        ("username=%3Cb%3Ex&password=12345678", "may only contain"),
        (
            "username=erin&password=short",
            "must be 8 to 128 characters",
        ),
        (long_pass.as_str(), "must be 8 to 128 characters"),
        ("password=12345678", "missing field `username`"),
        ("username=erin", "missing field `password`"),
    ];
    for (form, message) in table {
        for json in [false, true] {
            let resp = post("/user/register", form, json);
            assert_eq!(resp.status, 400, "{form}");
            assert!(body(&resp).contains(message), "{form}: {}", body(&resp));
        }
    }
    // The form is re-rendered with the name, escaped.
    let page = body(&post(
        "/user/register",
        "username=%3Cb%3Ex&password=1",
        false,
    ));
    assert!(page.contains("value=\"&lt;b&gt;x\""), "{page}");
    assert!(model::list::<Account>().unwrap().is_empty());
    assert_eq!(post("/user/login", "username=x", false).status, 400);
}

#[test]
fn pages_and_guards() {
    for target in ["/user/register", "/user/login"] {
        let resp = handle(Request::new("GET", target));
        assert_eq!(resp.status, 200, "{target}");
        assert!(body(&resp).contains("<form method=\"post\""));
    }
    let resp = handle(Request::new("GET", "/user/profile"));
    assert_eq!(resp.status, 302);
    assert_eq!(
        resp.header("location"),
        Some("/user/login?next=%2Fuser%2Fprofile")
    );
    let resp =
        handle(Request::new("GET", "/user/profile").with_header("Accept", "application/json"));
    assert_eq!(resp.status, 401);
    // Logging out without a session is fine.
    assert_eq!(handle(Request::new("POST", "/user/logout")).status, 302);
    assert_eq!(handle(Request::new("GET", "/user/logout")).status, 405);
}

#[test]
fn hashes_are_salted_and_verify() {
    let a = hash_password("same password").unwrap();
    let b = hash_password("same password").unwrap();
    assert_ne!(a, b);
    assert!(verify_password("same password", &a));
    assert!(!verify_password("other password", &a));
    assert!(!verify_password("same password", "not a hash"));
    assert_eq!(safe_next("/a//b"), Some("/a//b"));
    assert_eq!(safe_next("/\t"), None);
}
