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

// Throttling of failed logins. Time is injected through `login_at` and the
// throttle's own functions: `T0` starts a window, so `T0 + WINDOW_SECS` starts
// the next one.

const T0: i64 = 1_778_400_000;
const PASSWORD: &str = "correct+horse";

fn register(name: &str) {
    let resp = post(
        "/user/register",
        &format!("username={name}&password={PASSWORD}"),
        false,
    );
    assert_eq!(resp.status, 303, "{}", body(&resp));
}

/// A login from `client` (`ip:port`) at `now`, with an optional `Cookie`.
fn login_from(client: &str, form: &str, cookie: Option<&str>, json: bool, now: i64) -> Response {
    let mut req = Request::new("POST", "/user/login")
        .with_header("Content-Type", "application/x-www-form-urlencoded")
        .with_body(form);
    req.client = client.to_owned();
    if let Some(cookie) = cookie {
        req = req.with_header("Cookie", cookie);
    }
    if json {
        req = req.with_header("Accept", "application/json");
    }
    pages().finish(&req, login_at(&req, now))
}

fn right(name: &str) -> String {
    format!("username={name}&password={PASSWORD}")
}

fn wrong(name: &str) -> String {
    format!("username={name}&password=wrong-guess")
}

/// The `user_device=<token>` pair a response sets, if any.
fn device_cookie(resp: &Response) -> Option<String> {
    resp.headers_all("set-cookie")
        .into_iter()
        .find(|c| c.starts_with("user_device="))
        .map(|c| c.split(';').next().unwrap().to_owned())
}

/// The stored throttle keys of `window`.
fn throttle_keys(window: i64) -> Vec<String> {
    native::dump()
        .into_keys()
        .map(|k| String::from_utf8(k).unwrap())
        .filter(|k| k.starts_with(&format!("throttle/{window:012}/")))
        .collect()
}

#[test]
fn five_wrong_passwords_from_one_client_then_429_even_for_the_right_password() {
    register("alice");
    for port in 1..=throttle::LIMIT_ACCOUNT_CLIENT {
        // Another port each time: the limit is per IP.
        let client = format!("198.51.100.7:{}", 40_000 + port);
        let resp = login_from(&client, &wrong("alice"), None, false, T0 + port);
        assert_eq!(resp.status, 401, "attempt {port}");
    }
    let resp = login_from("198.51.100.7:50000", &right("Alice"), None, false, T0 + 100);
    assert_eq!(resp.status, 429, "{}", body(&resp));
    assert_eq!(resp.header("retry-after"), Some("800"));
    let page = body(&resp);
    assert!(
        page.contains("too many failed logins; try again in 14 minutes"),
        "{page}"
    );
    assert!(
        page.contains("id=\"login-form\"") && page.contains("value=\"Alice\""),
        "{page}"
    );
    assert!(device_cookie(&resp).is_none());
    assert_eq!(native::session().started, 0);
    // The right and a wrong password get the same answer while throttled.
    let guess = login_from("198.51.100.7:50001", &wrong("Alice"), None, false, T0 + 100);
    assert_eq!((guess.status, body(&guess)), (429, page));

    let resp = login_from("198.51.100.7:50002", &right("alice"), None, true, T0 + 899);
    assert_eq!(resp.status, 429);
    assert_eq!(resp.header("retry-after"), Some("1"));
    let v: Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(v["status"], 429);
    assert_eq!(v["error"], "too many failed logins; try again in 1 minute");
}

#[test]
fn unknown_accounts_are_throttled_like_real_ones() {
    register("alice");
    let answers = |name: &str| -> Vec<(u16, Option<String>)> {
        (0..=throttle::LIMIT_ACCOUNT_CLIENT)
            .map(|i| {
                let resp = login_from("203.0.113.9:1", &wrong(name), None, true, T0 + i);
                (resp.status, resp.header("retry-after").map(str::to_owned))
            })
            .collect()
    };
    let known = answers("alice");
    assert_eq!(known, answers("nobody"));
    assert_eq!(known.last(), Some(&(429, Some("895".to_owned()))));
    assert!(known[..5].iter().all(|a| a.0 == 401), "{known:?}");
}

#[test]
fn another_client_address_can_still_sign_in() {
    register("alice");
    for i in 0..throttle::LIMIT_ACCOUNT_CLIENT {
        login_from("198.51.100.7:1", &wrong("alice"), None, false, T0 + i);
    }
    let here = login_from("198.51.100.7:1", &right("alice"), None, false, T0 + 10);
    assert_eq!(here.status, 429);
    let there = login_from("192.0.2.44:1", &right("alice"), None, false, T0 + 10);
    assert_eq!(there.status, 302, "{}", body(&there));
    assert_eq!(native::session().started, 1);

    // One address trying a password on many accounts (spraying) is stopped
    // after 20 failures, on every account; other addresses are not.
    for i in 0..throttle::LIMIT_CLIENT {
        let resp = login_from(
            "203.0.113.5:1",
            &wrong(&format!("user{i}")),
            None,
            false,
            T0 + 20,
        );
        assert_eq!(resp.status, 401, "user{i}");
    }
    let sprayer = login_from("203.0.113.5:1", &right("alice"), None, false, T0 + 30);
    assert_eq!(sprayer.status, 429);
    let other = login_from("203.0.113.6:1", &right("alice"), None, false, T0 + 30);
    assert_eq!(other.status, 302);
}

#[test]
fn the_per_account_limit_stops_guessing_from_many_addresses_but_not_a_trusted_device() {
    register("alice");
    register("bob");
    let first = login_from("192.0.2.1:5000", &right("alice"), None, false, T0);
    assert_eq!(first.status, 302);
    let set = first
        .headers_all("set-cookie")
        .into_iter()
        .find(|c| c.starts_with("user_device="))
        .unwrap()
        .to_owned();
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/user", "Max-Age=2592000"] {
        assert!(set.contains(attribute), "{set}");
    }
    let alices_device = device_cookie(&first).unwrap();
    let bobs_device =
        device_cookie(&login_from("192.0.2.2:1", &right("bob"), None, false, T0)).unwrap();

    // Distributed guessing: one failure from each of 100 addresses.
    for i in 0..throttle::LIMIT_ACCOUNT {
        let client = format!("10.0.{}.{}:4000", i / 250, i % 250 + 1);
        let resp = login_from(&client, &wrong("alice"), None, false, T0 + 60);
        assert_eq!(resp.status, 401, "{client}");
    }
    // Now the account is closed to browsers it does not know, whatever the
    // address or the password, and to another account's device cookie.
    for cookie in [None, Some(bobs_device.as_str()), Some("user_device=forged")] {
        let resp = login_from("192.0.2.99:1", &right("alice"), cookie, false, T0 + 120);
        assert_eq!(resp.status, 429, "{cookie:?}");
    }
    // Its owner's browser is exempt, from any address, and keeps its token.
    let cookie = Some(alices_device.as_str());
    let resp = login_from("192.0.2.200:1", &right("alice"), cookie, false, T0 + 120);
    assert_eq!(resp.status, 302, "{}", body(&resp));
    assert_eq!(device_cookie(&resp), Some(alices_device.clone()));
    // Other accounts are not affected.
    assert_eq!(
        login_from("192.0.2.99:1", &right("bob"), None, false, T0 + 120).status,
        302
    );

    // The device is still held to the per (account, client) limit.
    for i in 0..throttle::LIMIT_ACCOUNT_CLIENT {
        let resp = login_from(
            "192.0.2.200:1",
            &wrong("alice"),
            cookie,
            false,
            T0 + 130 + i,
        );
        assert_eq!(resp.status, 401);
    }
    let resp = login_from("192.0.2.200:1", &right("alice"), cookie, false, T0 + 140);
    assert_eq!(resp.status, 429);
    // ... which another address of the same device escapes.
    let resp = login_from("192.0.2.201:1", &right("alice"), cookie, false, T0 + 140);
    assert_eq!(resp.status, 302);
}

#[test]
fn the_window_ending_lifts_the_limit() {
    register("alice");
    for i in 0..throttle::LIMIT_ACCOUNT_CLIENT {
        login_from("198.51.100.7:1", &wrong("alice"), None, false, T0 + 600 + i);
    }
    let resp = login_from("198.51.100.7:1", &right("alice"), None, false, T0 + 899);
    assert_eq!(resp.status, 429);
    assert_eq!(resp.header("retry-after"), Some("1"));
    let next = T0 + throttle::WINDOW_SECS;
    let resp = login_from("198.51.100.7:1", &right("alice"), None, false, next);
    assert_eq!(resp.status, 302, "{}", body(&resp));
}

#[test]
fn a_successful_login_clears_the_account_and_client_count() {
    register("alice");
    let client = "198.51.100.7:1";
    for i in 0..4 {
        assert_eq!(
            login_from(client, &wrong("alice"), None, false, T0 + i).status,
            401
        );
    }
    assert_eq!(
        login_from(client, &right("alice"), None, false, T0 + 5).status,
        302
    );
    let window = throttle::window(T0);
    // The (account, client) counter is gone; the others hold the 4 failures.
    let keys = throttle_keys(window);
    assert_eq!(
        keys,
        [
            format!("throttle/{window:012}/a/alice"),
            format!("throttle/{window:012}/c/198.51.100.7"),
        ]
    );
    for key in &keys {
        assert_eq!(
            kv::get(key.as_bytes()).unwrap(),
            Some(b"4".to_vec()),
            "{key}"
        );
    }
    for i in 0..throttle::LIMIT_ACCOUNT_CLIENT {
        assert_eq!(
            login_from(client, &wrong("alice"), None, false, T0 + 10 + i).status,
            401
        );
    }
    assert_eq!(
        login_from(client, &right("alice"), None, false, T0 + 20).status,
        429
    );
}

#[test]
fn attempts_in_flight_count_against_the_limit() {
    // Each attempt is counted before its password is checked, so attempts
    // that overlap cannot all pass one check.
    let attempt = throttle::Attempt::new("alice", "198.51.100.7:1", false);
    let mut in_flight = Vec::new();
    for _ in 0..throttle::LIMIT_ACCOUNT_CLIENT {
        match throttle::begin(&attempt, T0).unwrap() {
            throttle::Decision::Allowed(r) => in_flight.push(r),
            throttle::Decision::Throttled { .. } => panic!("throttled too early"),
        }
    }
    assert_eq!(
        throttle::begin(&attempt, T0).unwrap(),
        throttle::Decision::Throttled { retry_after: 900 }
    );
    // One of them succeeds: the (account, client) count is cleared, and its
    // own count taken back from the others.
    in_flight.pop().unwrap().succeeded().unwrap();
    let window = throttle::window(T0);
    let count = |scope: &str| kv::get(format!("throttle/{window:012}/{scope}").as_bytes());
    assert_eq!(count("ac/198.51.100.7/alice").unwrap(), None);
    assert_eq!(count("c/198.51.100.7").unwrap(), Some(b"4".to_vec()));
    assert!(matches!(
        throttle::begin(&attempt, T0).unwrap(),
        throttle::Decision::Allowed(_)
    ));
    in_flight
        .into_iter()
        .for_each(throttle::Reservation::failed);
}

#[test]
fn old_windows_keys_get_deleted_a_bounded_number_per_attempt() {
    let first = throttle::window(T0);
    for i in 0..30 {
        let attempt = throttle::Attempt::new(&format!("user{i}"), &format!("10.0.0.{i}:1"), false);
        let throttle::Decision::Allowed(r) = throttle::begin(&attempt, T0).unwrap() else {
            panic!("throttled");
        };
        r.failed();
    }
    assert_eq!(throttle_keys(first).len(), 90);
    // Another failure each time, of another account from another address:
    // three new keys.
    let mut n = 0;
    let mut again = |now: i64| {
        n += 1;
        let one = throttle::Attempt::new(&format!("carol{n}"), &format!("192.0.2.{n}:1"), false);
        let throttle::Decision::Allowed(r) = throttle::begin(&one, now).unwrap() else {
            panic!("throttled");
        };
        r.failed();
    };
    // The previous window is kept.
    again(T0 + throttle::WINDOW_SECS);
    assert_eq!(throttle_keys(first).len(), 90);
    // Older ones go, PRUNE_PER_ATTEMPT keys per attempt.
    let later = T0 + 2 * throttle::WINDOW_SECS;
    for left in [80, 70, 60, 50, 40, 30, 20, 10, 0] {
        again(later);
        assert_eq!(throttle_keys(first).len(), left);
    }
    assert_eq!(throttle_keys(first + 1).len(), 3);
    assert_eq!(throttle_keys(first + 2).len(), 27);
    assert_eq!(throttle::prune(later, 1000).unwrap(), 0);
    assert_eq!(
        throttle::prune(T0 + 3 * throttle::WINDOW_SECS, 2).unwrap(),
        2
    );
    assert_eq!(throttle_keys(first + 1).len(), 1);
}

#[test]
fn client_ids_are_the_ip_and_an_ipv6_slash_64() {
    let table = [
        ("198.51.100.7:53422", "198.51.100.7"),
        ("[2001:db8:1:2:3:4:5:6]:443", "2001:db8:1:2::/64"),
        ("[2001:db8:1:2:ffff::1]:80", "2001:db8:1:2::/64"),
        ("[::ffff:192.0.2.1]:80", "192.0.2.1"),
        ("192.0.2.1", "192.0.2.1"),
        ("", "unknown"),
        ("not an address", "unknown"),
    ];
    for (client, want) in table {
        assert_eq!(throttle::client_id(client), want, "{client}");
    }
    assert_eq!(
        throttle::Attempt::new(" Alice ", "", false).account,
        "alice"
    );
    // Names that could never be registered share one id (and stay in a key).
    let long = "x".repeat(2000);
    assert_eq!(throttle::Attempt::new(&long, "", false).account, "~");
    assert_eq!(throttle::Attempt::new("a/b", "", false).account, "~");
}

#[test]
fn device_tokens_are_bound_to_their_account_expire_and_are_bounded() {
    let token = device::remember(None, 1, T0).unwrap();
    assert_eq!(token.len(), 32);
    assert!(device::is_trusted(Some(&token), 1, T0 + 1).unwrap());
    assert!(!device::is_trusted(Some(&token), 2, T0 + 1).unwrap());
    assert!(!device::is_trusted(Some("../../user/1"), 1, T0).unwrap());
    assert!(!device::is_trusted(None, 1, T0).unwrap());
    // Signing in again renews the same token.
    let later = T0 + device::DEVICE_TTL_SECS - 10;
    assert_eq!(device::remember(Some(&token), 1, later).unwrap(), token);
    assert!(device::is_trusted(Some(&token), 1, T0 + device::DEVICE_TTL_SECS).unwrap());
    // Expired, it is refused and deleted.
    let expired = later + device::DEVICE_TTL_SECS;
    assert!(!device::is_trusted(Some(&token), 1, expired).unwrap());
    assert_eq!(kv::list_all(b"device/1/").unwrap(), Vec::<Vec<u8>>::new());
    // However many sign-ins, an account keeps at most MAX_DEVICES; the ones
    // that expire first go.
    let tokens: Vec<String> = (0..15)
        .map(|i| device::remember(None, 1, T0 + i).unwrap())
        .collect();
    assert_eq!(
        kv::list_all(b"device/1/").unwrap().len(),
        device::MAX_DEVICES
    );
    assert!(!device::is_trusted(Some(&tokens[4]), 1, T0 + 20).unwrap());
    assert!(device::is_trusted(Some(&tokens[5]), 1, T0 + 20).unwrap());
}
