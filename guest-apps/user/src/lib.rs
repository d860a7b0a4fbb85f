//! The `user` guest app: register, log in and out through the host's sessions, and a profile page; passwords hashed with argon2id.
//!
//! Accounts live in the app's storage through [`guest_sdk::model`] (table
//! `user`), with a unique index `user/by-name/<lowercased name>` → id that is
//! claimed with a compare-and-swap, so two registrations of one name cannot
//! both succeed. Logging in asks the host to start a session
//! ([`guest_sdk::session`]), which needs the `sessions` grant; every app then
//! sees the user in [`Request::user`].
//!
//! Failed logins are throttled ([`throttle`]): too many in a 15-minute window
//! per (account, client address), per client address or per account answer
//! `429` with `Retry-After`, before any password is checked. A browser that
//! signed in before carries a device cookie ([`device`]) that exempts it from
//! the limits an attacker elsewhere could trip.

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use guest_sdk::form::Form;
use guest_sdk::model::{self, Model};
use guest_sdk::{Request, Response, Router, guard, kv, session};
use guest_web::{Answer, time};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub mod device;
pub mod throttle;

/// Where a successful login goes without a usable `next`.
pub const DEFAULT_NEXT: &str = "/todo/index";
/// The answer to a wrong password and to an unknown user alike.
pub const INVALID_LOGIN: &str = "invalid username or password";
/// Username length, in characters.
const USERNAME_LEN: (usize, usize) = (3, 32);
/// Password length, in characters.
const PASSWORD_LEN: (usize, usize) = (8, 128);
/// Argon2id memory cost in KiB (OWASP's minimum: m=19 MiB, t=2, p=1); the
/// guest's memory limit is 64 MiB by default.
const ARGON2_M_KIB: u32 = 19 * 1024;
/// Argon2id passes.
const ARGON2_T: u32 = 2;

/// An account as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// The name as registered (unique ignoring ASCII case).
    pub username: String,
    /// The argon2id PHC string (`$argon2id$v=19$m=...`).
    pub password_hash: String,
    /// Unix seconds of registration.
    pub created_at: i64,
}

impl Model for Account {
    const TABLE: &'static str = "user";
}

/// The key of the unique-name index entry of `username`.
fn name_key(username: &str) -> String {
    format!("user/by-name/{}", username.to_ascii_lowercase())
}

/// The app's routes.
pub fn router() -> Router {
    Router::new()
        .get("/user", |_: &Request| Response::redirect("/user/profile"))
        .get("/user/register", wrap(register_form))
        .post("/user/register", wrap(register))
        .get("/user/login", wrap(login_form))
        .post("/user/login", wrap(login))
        .post("/user/logout", wrap(logout))
        .get("/user/profile", wrap(profile))
}

guest_web::export_app! {
    router: router,
    templates: [
        ("register.html", include_str!("../templates/register.html")),
        ("login.html", include_str!("../templates/login.html")),
        ("profile.html", include_str!("../templates/profile.html")),
    ],
}

/// `status` with `message`: JSON, or `page` re-rendered with `ctx` and the error.
fn invalid(req: &Request, status: u16, message: &str, page: &str, mut ctx: Value) -> Response {
    if req.wants_json() {
        return pages().error(req, status, message);
    }
    ctx["error"] = json!(message);
    pages().render(req, page, ctx).with_status(status)
}

/// `next` if it is a path on this site (`/...`, not `//...` nor `/\...`).
pub fn safe_next(next: &str) -> Option<&str> {
    let local = next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && !next.chars().any(char::is_control);
    local.then_some(next)
}

/// Checks a new username: 3–32 characters of `[A-Za-z0-9_.-]`.
pub fn check_username(name: &str) -> Result<(), String> {
    let len = name.chars().count();
    if len < USERNAME_LEN.0 || len > USERNAME_LEN.1 {
        return Err(format!(
            "the username must be {} to {} characters long",
            USERNAME_LEN.0, USERNAME_LEN.1
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
    {
        return Err("the username may only contain letters, digits, `_`, `.` and `-`".into());
    }
    Ok(())
}

/// Checks a new password: 8–128 characters.
pub fn check_password(password: &str) -> Result<(), String> {
    let len = password.chars().count();
    if len < PASSWORD_LEN.0 || len > PASSWORD_LEN.1 {
        return Err(format!(
            "the password must be {} to {} characters long",
            PASSWORD_LEN.0, PASSWORD_LEN.1
        ));
    }
    Ok(())
}

/// The argon2id hasher with this app's parameters.
fn hasher() -> Result<Argon2<'static>, String> {
    let params = Params::new(ARGON2_M_KIB, ARGON2_T, 1, None).map_err(|e| e.to_string())?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes `password` with a fresh random 16-byte salt into a PHC string.
pub fn hash_password(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| format!("no random salt: {e}"))?;
    let hash = hasher()?
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map_err(|e| e.to_string())?;
    Ok(hash.to_string())
}

/// Whether `password` matches the PHC string `stored`.
pub fn verify_password(password: &str, stored: &str) -> bool {
    let Ok(hash) = PasswordHash::new(stored) else {
        return false;
    };
    hasher().is_ok_and(|h| h.verify_password(password.as_bytes(), &hash).is_ok())
}

/// `GET /user/register`.
fn register_form(req: &Request) -> Answer {
    Ok(pages().render(req, "register.html", json!({})))
}

/// `POST /user/register` (`username`, `password`).
fn register(req: &Request) -> Answer {
    let form = Form::parse(req);
    let shown = json!({ "username": form.get("username").unwrap_or_default() });
    let bad =
        |status: u16, message: &str| invalid(req, status, message, "register.html", shown.clone());
    let username = form
        .required("username")
        .map_err(|e| bad(400, &e.0))?
        .trim();
    let password = form.required("password").map_err(|e| bad(400, &e.0))?;
    check_username(username).map_err(|e| bad(400, &e))?;
    check_password(password).map_err(|e| bad(400, &e))?;
    let taken = format!("the username {username:?} is already taken");
    let index = name_key(username);
    let exists = kv::get(index.as_bytes())
        .map_err(|e| pages().storage_error(req, "reading the name index", e))?;
    if exists.is_some() {
        return Err(bad(409, &taken));
    }
    let password_hash = hash_password(password).map_err(|e| {
        guest_sdk::log::error(&format!("hashing a password: {e}"));
        pages().error(req, 500, "cannot hash the password")
    })?;
    let id = model::next_id::<Account>()
        .map_err(|e| pages().storage_error(req, "taking a user id", e))?;
    // Claim the name atomically: of two concurrent registrations, one wins.
    let claimed = kv::cas(index.as_bytes(), None, Some(id.to_string().as_bytes()))
        .map_err(|e| pages().storage_error(req, "claiming a username", e))?;
    if !claimed {
        return Err(bad(409, &taken));
    }
    let account = Account {
        username: username.to_owned(),
        password_hash,
        created_at: time::now(),
    };
    if let Err(e) = model::put(id, &account) {
        // Release the name so that the user can try again.
        let _ = kv::cas(index.as_bytes(), Some(id.to_string().as_bytes()), None);
        return Err(pages().storage_error(req, "storing an account", e));
    }
    if req.wants_json() {
        return Ok(Response::json(&json!({ "id": id, "username": username })).with_status(201));
    }
    let mut location = String::from("/user/login?registered=");
    location.extend(form_urlencoded::byte_serialize(username.as_bytes()));
    Ok(Response::see_other(&location))
}

/// The account of `username` with its id, if any.
fn find_account(username: &str) -> Result<Option<(u64, Account)>, String> {
    let Some(id) = kv::get(name_key(username).as_bytes()).map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    let Some(id) = std::str::from_utf8(&id)
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    else {
        return Err(format!("the name index of {username:?} is corrupt"));
    };
    Ok(model::get::<Account>(id)
        .map_err(|e| e.to_string())?
        .map(|account| (id, account)))
}

/// `GET /user/login?next=...`.
fn login_form(req: &Request) -> Answer {
    let ctx = json!({
        "next": req.query("next").and_then(safe_next).unwrap_or_default(),
        "registered": req.query("registered"),
    });
    Ok(pages().render(req, "login.html", ctx))
}

/// `POST /user/login` (`username`, `password`, optional `next`).
fn login(req: &Request) -> Answer {
    login_at(req, time::now())
}

/// [`login`] at `now` (Unix seconds), which decides the throttle's window.
fn login_at(req: &Request, now: i64) -> Answer {
    let form = Form::parse(req);
    let next = form.get("next").and_then(safe_next);
    let shown = json!({
        "username": form.get("username").unwrap_or_default(),
        "next": next.unwrap_or_default(),
    });
    let bad =
        |status: u16, message: &str| invalid(req, status, message, "login.html", shown.clone());
    let username = form
        .required("username")
        .map_err(|e| bad(400, &e.0))?
        .trim();
    let password = form.required("password").map_err(|e| bad(400, &e.0))?;
    let found = find_account(username)
        .map_err(|e| pages().storage_error(req, "looking up an account", e))?;
    let device_token = req.cookie(device::COOKIE);
    let trusted = match &found {
        Some((id, _)) => device::is_trusted(device_token, *id, now)
            .map_err(|e| pages().storage_error(req, "reading a device cookie", e))?,
        None => false,
    };
    // Throttle before the password is checked: a refused attempt costs no
    // hash and says nothing about the password.
    let attempt = throttle::Attempt::new(username, &req.client, trusted);
    let reservation = match throttle::begin(&attempt, now)
        .map_err(|e| pages().storage_error(req, "counting a login attempt", e))?
    {
        throttle::Decision::Allowed(reservation) => reservation,
        throttle::Decision::Throttled { retry_after } => {
            return Err(throttled(req, retry_after, shown));
        }
    };
    let Some((id, account)) = found else {
        // Spend the same work as a real check, so that timing does not tell
        // unknown users from wrong passwords.
        let _ = hash_password(password);
        reservation.failed();
        return Err(bad(401, INVALID_LOGIN));
    };
    if !verify_password(password, &account.password_hash) {
        reservation.failed();
        return Err(bad(401, INVALID_LOGIN));
    }
    if let Err(e) = reservation.succeeded() {
        // The sign-in stands; the counters lift at the window's end anyway.
        guest_sdk::log::warn(&format!("clearing failed-login counters: {e}"));
    }
    session::start(&id.to_string(), &account.username).map_err(|e| {
        guest_sdk::log::error(&format!("starting a session: {e}"));
        pages().error(req, 500, "cannot start a session")
    })?;
    let resp = if req.wants_json() {
        Response::json(&json!({ "id": id, "username": account.username }))
    } else {
        Response::redirect(next.unwrap_or(DEFAULT_NEXT))
    };
    match device::remember(device_token, id, now) {
        Ok(token) => Ok(resp.set_cookie(device::cookie(&token))),
        Err(e) => {
            // Signed in all the same, only without the device's exemption.
            guest_sdk::log::warn(&format!("remembering a device: {e}"));
            Ok(resp)
        }
    }
}

/// The answer to a throttled login: `429` with `Retry-After`, the login form
/// with the message (JSON `{"error", "status"}` for JSON clients).
fn throttled(req: &Request, retry_after: i64, shown: Value) -> Response {
    let minutes = (retry_after + 59) / 60;
    let plural = if minutes == 1 { "" } else { "s" };
    let message = format!("too many failed logins; try again in {minutes} minute{plural}");
    let resp = if req.wants_json() {
        Response::json(&json!({ "error": message, "status": 429 })).with_status(429)
    } else {
        invalid(req, 429, &message, "login.html", shown)
    };
    resp.with_header("Retry-After", &retry_after.to_string())
}

/// `POST /user/logout`.
fn logout(req: &Request) -> Answer {
    let ended = session::end().map_err(|e| {
        guest_sdk::log::error(&format!("ending a session: {e}"));
        pages().error(req, 500, "cannot end the session")
    })?;
    if req.wants_json() {
        return Ok(Response::json(&json!({ "logged_out": ended })));
    }
    Ok(Response::redirect(guard::LOGIN_PATH))
}

/// `GET /user/profile`: the signed-in user.
fn profile(req: &Request) -> Answer {
    let user = guard::require_login(req)?;
    let account = match user.id.parse::<u64>() {
        Ok(id) => model::get::<Account>(id)
            .map_err(|e| pages().storage_error(req, "reading an account", e))?,
        Err(_) => None,
    };
    let profile = json!({
        "id": user.id,
        "username": user.name,
        "created_at": account.as_ref().map(|a| a.created_at),
    });
    if req.wants_json() {
        let mut profile = profile;
        profile["created_at"] = json!(account.map(|a| time::rfc3339(a.created_at)));
        return Ok(Response::json(&profile));
    }
    Ok(pages().render(req, "profile.html", json!({ "profile": profile })))
}

// Natively only: the tests use the SDK's in-memory storage and sessions.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests;
