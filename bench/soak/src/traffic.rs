//! The soak's traffic: browsing threads, signed-in app users, hostile guests, hot swaps, held idle connections and slowloris clients, each bounded in count and time and sent only to the server's loopback addresses.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::client::{self, Answer, KeepAlive, request};
use crate::server::{HEADER_TIMEOUT_SECS, IDLE_TIMEOUT_SECS, VERSIONS};

/// Threads requesting hello, its echo, static files and the swapped apps.
const BROWSE_THREADS: usize = 2;
/// Pause between a browsing thread's requests: at most about 100 requests a
/// second each, a steady load that leaves most of 2 shared cores free.
const BROWSE_PAUSE: Duration = Duration::from_millis(10);
/// Requests on one keep-alive connection before a browsing thread closes it
/// and opens another: connections come and go, not only requests.
const KEEPALIVE_REQUESTS: u32 = 100;

/// Users signed in to todo and weibo, each on its own thread.
const APP_USERS: usize = 2;
/// Pause between a user's rounds (a todo written and read, a weibo post every
/// few rounds): storage writes are the slowest requests here.
const APPS_PAUSE: Duration = Duration::from_millis(50);
/// Todos and posts a user keeps; older ones are deleted, so that storage and
/// page sizes reach a steady state instead of growing with the run.
const KEEP_ITEMS: usize = 20;
/// Rounds between a user's weibo posts.
const WEIBO_EVERY: u64 = 3;
/// How often a user signs out and in again: new sessions are created and
/// dropped throughout the run, and password hashing (seconds of CPU on a
/// debug build's busy machine) stays a small share of the load.
const RELOGIN_INTERVAL: Duration = Duration::from_secs(30);

/// Pause between hostile requests (one thread, one at a time): a runaway is
/// stopped every quarter second, a fraction of a core for the loop guest.
const HOSTILE_PAUSE: Duration = Duration::from_millis(250);
/// The hostile routes and the answers they must get.
const HOSTILE: [(&str, u16); 4] = [
    ("/spin", 504),
    ("/bomb", 500),
    ("/flood", 200),
    ("/trap", 500),
];

/// Time between hot swaps (one through the admin API, one by rewriting a
/// module file): "every few seconds"; also how long the watcher gets to
/// pick up a rewritten file (it waits for 150 ms of quiet).
const SWAP_INTERVAL: Duration = Duration::from_secs(3);

/// Idle keep-alive connections held open (reopened when the server's idle
/// timeout closes them).
pub const IDLE_CONNECTIONS: usize = 200;
/// How often the idle connections are looked at.
const IDLE_CHECK: Duration = Duration::from_secs(1);
/// How long past the server's idle timeout an idle connection may stay open
/// before that counts as an error: the server sweeps its deadlines about
/// once a second, and a busy machine delays it.
const IDLE_CLOSE_SLACK: Duration = Duration::from_secs(10);

/// Slowloris clients, each trickling one header forever.
const SLOWLORIS_CLIENTS: usize = 4;
/// Time between a slowloris client's bytes.
const SLOWLORIS_BYTE_INTERVAL: Duration = Duration::from_millis(500);
/// How long past the server's header timeout a slowloris connection may stay
/// open before that counts as an error (as for idle connections).
const SLOWLORIS_SLACK: Duration = Duration::from_secs(10);

/// Upper bound on any thread's rounds, whatever its pause: far more than the
/// longest run allows (a 10 ms pause gives 360,000 rounds an hour); the
/// deadline is what ends a run, this only bounds a loop whose pause is lost.
const MAX_ROUNDS: u64 = 100_000_000;

/// Longest single sleep of a pausing thread: the end of the run is noticed
/// within this.
const PAUSE_SLICE: Duration = Duration::from_millis(200);

/// Error descriptions kept and printed: the first ones tell what went wrong;
/// a flood of them would only hide that.
const MAX_ERROR_LINES: usize = 50;

/// Counters shared by the traffic threads and read by the sampler.
#[derive(Default)]
pub struct Stats {
    /// Requests answered (with any status).
    pub answered: AtomicU64,
    /// Requests that failed: an unexpected status or body, no answer, or a
    /// timeout that did not fire.
    pub errors: AtomicU64,
    /// Requests refused with 503 (a limit said "retry"): not errors.
    pub throttled: AtomicU64,
    /// Hot swaps made (admin API and watcher).
    pub swaps: AtomicU64,
    /// Idle connections closed by the server's idle timeout and reopened.
    pub idle_closed: AtomicU64,
    /// Slowloris connections cut by the server's header timeout.
    pub slowloris_cut: AtomicU64,
    lines: Mutex<Vec<String>>,
}

impl Stats {
    /// Counts an error and keeps (and prints) its description.
    pub fn error(&self, what: String) {
        let n = self.errors.fetch_add(1, Ordering::Relaxed);
        if (n as usize) < MAX_ERROR_LINES {
            eprintln!("soak: error: {what}");
            if let Ok(mut lines) = self.lines.lock() {
                lines.push(what);
            }
        }
    }

    /// The errors kept.
    pub fn error_lines(&self) -> Vec<String> {
        self.lines.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Counts an answer to `what`: expected (returned), throttled, or an error.
    fn check(&self, what: &str, result: io::Result<Answer>, expected: &[u16]) -> Option<Answer> {
        match result {
            Ok(answer) => {
                self.answered.fetch_add(1, Ordering::Relaxed);
                if expected.contains(&answer.status) {
                    Some(answer)
                } else if answer.status == 503 {
                    self.throttled.fetch_add(1, Ordering::Relaxed);
                    None
                } else {
                    let text = excerpt(&answer.body);
                    self.error(format!(
                        "{what}: {} (expected {expected:?}): {text}",
                        answer.status
                    ));
                    None
                }
            }
            Err(e) => {
                self.error(format!("{what}: {e}"));
                None
            }
        }
    }

    /// As `check`, and the body must be one of `bodies`.
    fn check_body(
        &self,
        what: &str,
        result: io::Result<Answer>,
        expected: u16,
        bodies: &[&[u8]],
    ) -> Option<Answer> {
        let answer = self.check(what, result, &[expected])?;
        if bodies.contains(&answer.body.as_slice()) {
            Some(answer)
        } else {
            let text = excerpt(&answer.body);
            self.error(format!("{what}: unexpected body {text:?}"));
            None
        }
    }
}

/// Longest excerpt of a body kept in an error line: enough to recognise a
/// page or a JSON error.
const EXCERPT_CHARS: usize = 160;

/// The start of a body, on one line.
fn excerpt(body: &[u8]) -> String {
    String::from_utf8_lossy(body)
        .chars()
        .take(EXCERPT_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// What every traffic thread shares.
#[derive(Clone)]
pub struct Ctx {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub token: Arc<str>,
    pub stats: Arc<Stats>,
    pub stop: Arc<AtomicBool>,
    pub deadline: Instant,
}

impl Ctx {
    fn running(&self) -> bool {
        !self.stop.load(Ordering::Relaxed) && Instant::now() < self.deadline
    }

    /// Sleeps `d`, waking early when the run ends.
    fn pause(&self, d: Duration) {
        let until = Instant::now() + d;
        while self.running() {
            let now = Instant::now();
            if now >= until {
                break;
            }
            std::thread::sleep((until - now).min(PAUSE_SLICE));
        }
    }
}

/// What the threads need from the setup.
pub struct Material {
    pub static_files: Vec<(String, Vec<u8>)>,
    pub versions: [Vec<u8>; 2],
    pub swapfile: PathBuf,
}

/// The kinds of traffic, as `--traffic` names them.
pub const KINDS: [&str; 6] = ["browse", "users", "hostile", "swap", "idle", "slowloris"];

/// Starts the traffic threads of the kinds in `kinds` (all of them by default).
pub fn start(ctx: &Ctx, material: Arc<Material>, kinds: &[String]) -> Vec<JoinHandle<()>> {
    let mut handles = Vec::new();
    let on = |kind: &str| kinds.iter().any(|k| k == kind);
    let mut spawn = |name: String, f: Box<dyn FnOnce() + Send>| {
        handles.push(
            std::thread::Builder::new()
                .name(name)
                .spawn(f)
                .expect("spawn a traffic thread"),
        );
    };
    if on("browse") {
        for i in 0..BROWSE_THREADS {
            let (ctx, m) = (ctx.clone(), material.clone());
            spawn(format!("browse-{i}"), Box::new(move || browse(&ctx, &m, i)));
        }
    }
    if on("users") {
        for i in 0..APP_USERS {
            let ctx = ctx.clone();
            spawn(format!("user-{i}"), Box::new(move || app_user(&ctx, i)));
        }
    }
    if on("hostile") {
        let c = ctx.clone();
        spawn("hostile".into(), Box::new(move || hostile(&c)));
    }
    if on("swap") {
        let (c, m) = (ctx.clone(), material.clone());
        spawn("swapper".into(), Box::new(move || swapper(&c, &m)));
    }
    if on("idle") {
        let c = ctx.clone();
        spawn("idle".into(), Box::new(move || idle(&c)));
    }
    if on("slowloris") {
        for i in 0..SLOWLORIS_CLIENTS {
            let ctx = ctx.clone();
            spawn(format!("slowloris-{i}"), Box::new(move || slowloris(&ctx)));
        }
    }
    handles
}

/// Hello, its echo, every static file, a missing one, and the swapped apps,
/// round and round on a keep-alive connection.
fn browse(ctx: &Ctx, m: &Material, seed: usize) {
    let stats = &ctx.stats;
    let mut conn = KeepAlive::new(ctx.addr);
    let versions: Vec<&[u8]> = VERSIONS.iter().map(|v| v.as_bytes()).collect();
    let echo = format!("soak echo from browser {seed}");
    let steps = 5 + m.static_files.len();
    for round in 0..MAX_ROUNDS {
        if !ctx.running() {
            break;
        }
        let close = conn.used() + 1 >= KEEPALIVE_REQUESTS;
        let get = |path: &str| request("GET", path, &[], b"", close);
        let step = (round as usize + seed) % steps;
        match step {
            0 => {
                stats.check_body(
                    "GET /hello",
                    conn.call(&get("/hello")),
                    200,
                    &[b"Hello, world!"],
                );
            }
            1 => {
                let raw = request(
                    "POST",
                    "/hello/echo",
                    &[("Content-Type", "text/plain")],
                    echo.as_bytes(),
                    close,
                );
                stats.check_body("POST /hello/echo", conn.call(&raw), 200, &[echo.as_bytes()]);
            }
            2 => {
                stats.check(
                    "GET /static/missing",
                    conn.call(&get("/static/no-such-file.txt")),
                    &[404],
                );
            }
            3 => {
                stats.check_body("GET /swap", conn.call(&get("/swap")), 200, &versions);
            }
            4 => {
                stats.check_body(
                    "GET /swapfile",
                    conn.call(&get("/swapfile")),
                    200,
                    &versions,
                );
            }
            n => {
                let (name, bytes) = &m.static_files[n - 5];
                let path = format!("/static/{name}");
                stats.check_body(
                    &format!("GET {path}"),
                    conn.call(&get(&path)),
                    200,
                    &[bytes],
                );
            }
        }
        ctx.pause(BROWSE_PAUSE);
    }
}

fn form(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Percent-encodes a form value (everything but unreserved characters).
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Asks for a JSON answer.
const JSON: &[(&str, &str)] = &[("Accept", "application/json")];

/// A form POST with an optional session cookie.
fn post(
    conn: &mut KeepAlive,
    path: &str,
    cookie: Option<&str>,
    fields: &[(&str, &str)],
) -> io::Result<Answer> {
    post_as(conn, path, cookie, fields, &[])
}

/// A form POST with an optional session cookie and extra headers.
fn post_as(
    conn: &mut KeepAlive,
    path: &str,
    cookie: Option<&str>,
    fields: &[(&str, &str)],
    extra: &[(&str, &str)],
) -> io::Result<Answer> {
    let body = form(fields);
    let mut headers = vec![("Content-Type", "application/x-www-form-urlencoded")];
    if let Some(c) = cookie {
        headers.push(("Cookie", c));
    }
    headers.extend_from_slice(extra);
    conn.call(&request("POST", path, &headers, body.as_bytes(), false))
}

/// A GET asking for JSON, with an optional session cookie.
fn get_json(conn: &mut KeepAlive, path: &str, cookie: Option<&str>) -> io::Result<Answer> {
    let mut headers = JSON.to_vec();
    if let Some(c) = cookie {
        headers.push(("Cookie", c));
    }
    conn.call(&request("GET", path, &headers, b"", false))
}

/// The session cookie a login answer sets, as `name=value`.
fn session_cookie(answer: &Answer) -> Option<String> {
    answer
        .headers_all("set-cookie")
        .find(|c| c.starts_with("wasmhost_session=") && !c.starts_with("wasmhost_session=;"))
        .and_then(|c| c.split(';').next())
        .map(str::to_owned)
}

const PASSWORD: &str = "correct horse battery staple";

/// Logs in; the session cookie.
fn log_in(ctx: &Ctx, conn: &mut KeepAlive, name: &str) -> Option<String> {
    let answer = ctx.stats.check(
        "POST /user/login",
        post(
            conn,
            "/user/login",
            None,
            &[("username", name), ("password", PASSWORD)],
        ),
        &[302, 303],
    )?;
    let cookie = session_cookie(&answer);
    if cookie.is_none() {
        ctx.stats
            .error("POST /user/login: no session cookie".into());
    }
    cookie
}

/// The ids of the items of `list` (a JSON array) that `mine` selects, oldest
/// (smallest id) first.
fn ids(list: &Value, mine: impl Fn(&Value) -> bool) -> Vec<i64> {
    let mut ids: Vec<i64> = list
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|v| mine(v))
                .filter_map(|v| v["id"].as_i64())
                .collect()
        })
        .unwrap_or_default();
    ids.sort_unstable();
    ids
}

/// Reads a JSON list, or counts an error.
fn json_list(ctx: &Ctx, what: &str, answer: Option<Answer>) -> Option<Value> {
    let answer = answer?;
    match serde_json::from_slice::<Value>(&answer.body) {
        Ok(v) if v.is_array() => Some(v),
        _ => {
            ctx.stats.error(format!(
                "{what}: not a JSON list: {}",
                excerpt(&answer.body)
            ));
            None
        }
    }
}

/// A user: registers, signs in, then writes and reads todos and weibo posts,
/// deleting the oldest so that storage stays bounded; signs in again now and then.
fn app_user(ctx: &Ctx, index: usize) {
    let stats = &ctx.stats;
    let name = format!("soak{index}");
    let mut conn = KeepAlive::new(ctx.addr);
    stats.check(
        "POST /user/register",
        post(
            &mut conn,
            "/user/register",
            None,
            &[("username", &name), ("password", PASSWORD)],
        ),
        &[302, 303],
    );
    let mut cookie = None;
    // The user's weibo posts, oldest first.
    let mut posts = std::collections::VecDeque::new();
    let mut signed_in = Instant::now();
    for round in 0..MAX_ROUNDS {
        if !ctx.running() {
            break;
        }
        if cookie.is_some() && signed_in.elapsed() >= RELOGIN_INTERVAL {
            stats.check(
                "POST /user/logout",
                post(&mut conn, "/user/logout", cookie.as_deref(), &[]),
                &[302, 303],
            );
            cookie = None;
        }
        let Some(c) = cookie.clone().or_else(|| log_in(ctx, &mut conn, &name)) else {
            ctx.pause(APPS_PAUSE);
            continue;
        };
        if cookie.is_none() {
            cookie = Some(c.clone());
            signed_in = Instant::now();
        }
        let title = format!("{name} todo {round}");
        stats.check(
            "POST /todo/add",
            post(&mut conn, "/todo/add", Some(&c), &[("title", &title)]),
            &[303],
        );
        let list = stats.check(
            "GET /todo/index",
            get_json(&mut conn, "/todo/index", Some(&c)),
            &[200],
        );
        if let Some(list) = json_list(ctx, "GET /todo/index", list) {
            let todos = ids(&list, |_| true);
            for id in todos.iter().take(todos.len().saturating_sub(KEEP_ITEMS)) {
                let id = id.to_string();
                stats.check(
                    "POST /todo/delete",
                    post(&mut conn, "/todo/delete", Some(&c), &[("id", &id)]),
                    &[303],
                );
            }
        }
        if round % WEIBO_EVERY == 0 {
            let content = format!("{name} says hello, round {round} <b>soak</b>");
            // Asked for JSON, the answer (201) names the new post: the index
            // shows one page of everyone's posts, too few to find one's oldest.
            let added = stats.check(
                "POST /weibo/add (JSON)",
                post_as(
                    &mut conn,
                    "/weibo/add",
                    Some(&c),
                    &[("content", &content)],
                    JSON,
                ),
                &[201],
            );
            if let Some(added) = added {
                match serde_json::from_slice::<Value>(&added.body)
                    .ok()
                    .and_then(|v| v["id"].as_i64())
                {
                    Some(id) => posts.push_back(id),
                    None => stats.error(format!(
                        "POST /weibo/add: no id in {}",
                        excerpt(&added.body)
                    )),
                }
            }
            while posts.len() > KEEP_ITEMS {
                let id = posts.pop_front().unwrap_or_default().to_string();
                stats.check(
                    "POST /weibo/delete",
                    post(&mut conn, "/weibo/delete", Some(&c), &[("id", &id)]),
                    &[303],
                );
            }
            let list = stats.check(
                "GET /weibo/index",
                get_json(&mut conn, "/weibo/index", None),
                &[200],
            );
            json_list(ctx, "GET /weibo/index", list);
            stats.check(
                "GET /weibo/index (HTML)",
                conn.call(&request("GET", "/weibo/index", &[], b"", false)),
                &[200],
            );
        }
        ctx.pause(APPS_PAUSE);
    }
}

/// The hostile guests in turn, each on a new connection: a loop, a memory
/// bomb, an output flood and a trap, each contained with its answer.
fn hostile(ctx: &Ctx) {
    for round in 0..MAX_ROUNDS {
        if !ctx.running() {
            break;
        }
        let (path, status) = HOSTILE[round as usize % HOSTILE.len()];
        let raw = request("GET", path, &[], b"", true);
        ctx.stats.check(
            &format!("GET {path}"),
            client::once(ctx.addr, &raw),
            &[status],
        );
        ctx.pause(HOSTILE_PAUSE);
    }
}

/// Replaces a file atomically (a temp file renamed over it), as docs/operations.md advises.
fn replace_file(path: &std::path::Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("wasm.tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// Every few seconds: deploys the other version of `swap` through the admin
/// API (the next request must run it), and rewrites the module file of
/// `swapfile` (by the next round, the watcher must have swapped it in).
fn swapper(ctx: &Ctx, m: &Material) {
    let stats = &ctx.stats;
    let auth = format!("Bearer {}", ctx.token);
    let mut next = 1;
    let mut written: Option<usize> = None;
    for _ in 0..MAX_ROUNDS {
        ctx.pause(SWAP_INTERVAL);
        if !ctx.running() {
            break;
        }
        let raw = request(
            "PUT",
            "/apps/swap/module",
            &[("Authorization", &auth)],
            &m.versions[next],
            true,
        );
        if stats
            .check(
                "PUT /apps/swap/module",
                client::once(ctx.admin, &raw),
                &[200],
            )
            .is_some()
        {
            stats.swaps.fetch_add(1, Ordering::Relaxed);
            let get = request("GET", "/swap", &[], b"", true);
            stats.check_body(
                "GET /swap after a deploy",
                client::once(ctx.addr, &get),
                200,
                &[VERSIONS[next].as_bytes()],
            );
        }
        if let Some(v) = written {
            let get = request("GET", "/swapfile", &[], b"", true);
            stats.check_body(
                &format!("GET /swapfile {SWAP_INTERVAL:?} after rewriting its file"),
                client::once(ctx.addr, &get),
                200,
                &[VERSIONS[v].as_bytes()],
            );
        }
        match replace_file(&m.swapfile, &m.versions[next]) {
            Ok(()) => {
                stats.swaps.fetch_add(1, Ordering::Relaxed);
                written = Some(next);
            }
            Err(e) => stats.error(format!("rewriting {}: {e}", m.swapfile.display())),
        }
        next = 1 - next;
    }
}

/// An idle keep-alive connection: opened with one GET /hello, then left alone.
struct Idle {
    stream: TcpStream,
    opened: Instant,
}

fn open_idle(ctx: &Ctx) -> Option<Idle> {
    let raw = request("GET", "/hello", &[], b"", false);
    let opened = Instant::now();
    let mut stream = match client::connect(ctx.addr).and_then(|mut s| s.write_all(&raw).map(|()| s))
    {
        Ok(s) => s,
        Err(e) => {
            ctx.stats.error(format!("opening an idle connection: {e}"));
            return None;
        }
    };
    let answer = client::read_one(&mut stream);
    ctx.stats
        .check_body("GET /hello (idle)", answer, 200, &[b"Hello, world!"])?;
    if let Err(e) = stream.set_nonblocking(true) {
        ctx.stats.error(format!("idle connection: {e}"));
        return None;
    }
    Some(Idle { stream, opened })
}

/// Holds `IDLE_CONNECTIONS` idle keep-alive connections; each one the server
/// closes (its idle timeout) is reopened; one it keeps open too long is an error.
fn idle(ctx: &Ctx) {
    let limit = Duration::from_secs(IDLE_TIMEOUT_SECS) + IDLE_CLOSE_SLACK;
    let mut held: Vec<Option<Idle>> = (0..IDLE_CONNECTIONS).map(|_| None).collect();
    for _ in 0..MAX_ROUNDS {
        if !ctx.running() {
            break;
        }
        for slot in held.iter_mut() {
            if !ctx.running() {
                break;
            }
            if let Some(conn) = slot {
                let mut byte = [0u8; 1];
                match conn.stream.read(&mut byte) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        if conn.opened.elapsed() > limit {
                            ctx.stats.error(format!(
                                "an idle connection was still open after {:?}",
                                conn.opened.elapsed()
                            ));
                            *slot = None;
                        }
                    }
                    Ok(0) => {
                        ctx.stats.idle_closed.fetch_add(1, Ordering::Relaxed);
                        *slot = None;
                    }
                    Ok(_) => {
                        ctx.stats
                            .error("an idle connection received unasked-for bytes".into());
                        *slot = None;
                    }
                    Err(e) => {
                        ctx.stats.error(format!("an idle connection failed: {e}"));
                        *slot = None;
                    }
                }
            }
            if slot.is_none() {
                *slot = open_idle(ctx);
            }
        }
        ctx.pause(IDLE_CHECK);
    }
}

/// A slowloris client: starts a request and sends its header a byte at a
/// time, forever; the server's header timeout must cut it off (408 or a
/// close), after which it starts again.
fn slowloris(ctx: &Ctx) {
    let limit = Duration::from_secs(HEADER_TIMEOUT_SECS) + SLOWLORIS_SLACK;
    let max_bytes = (limit.as_millis() / SLOWLORIS_BYTE_INTERVAL.as_millis()) as u64 + 1;
    for _ in 0..MAX_ROUNDS {
        if !ctx.running() {
            break;
        }
        let mut stream = match client::connect(ctx.addr).and_then(|mut s| {
            s.write_all(b"GET /hello HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")?;
            s.set_read_timeout(Some(SLOWLORIS_BYTE_INTERVAL))?;
            Ok(s)
        }) {
            Ok(s) => s,
            Err(e) => {
                ctx.stats.error(format!("slowloris connect: {e}"));
                ctx.pause(SLOWLORIS_BYTE_INTERVAL);
                continue;
            }
        };
        let opened = Instant::now();
        let mut cut = false;
        for _ in 0..max_bytes {
            if !ctx.running() {
                break;
            }
            // Enough of an answer to see its status line.
            let mut buf = [0u8; 64];
            match stream.read(&mut buf) {
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    if stream.write_all(b"a").is_err() {
                        cut = true;
                        break;
                    }
                }
                Ok(0) | Err(_) => {
                    cut = true;
                    break;
                }
                Ok(n) => {
                    ctx.stats.answered.fetch_add(1, Ordering::Relaxed);
                    if !buf[..n].starts_with(b"HTTP/1.1 408") {
                        let text = excerpt(&buf[..n]);
                        ctx.stats
                            .error(format!("slowloris: expected 408, got {text:?}"));
                    }
                    cut = true;
                    break;
                }
            }
        }
        if cut {
            ctx.stats.slowloris_cut.fetch_add(1, Ordering::Relaxed);
        } else if ctx.running() {
            ctx.stats.error(format!(
                "a slowloris connection was still open after {:?}",
                opened.elapsed()
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_are_percent_encoded() {
        assert_eq!(
            form(&[("title", "a b&c"), ("x", "<é>")]),
            "title=a%20b%26c&x=%3C%C3%A9%3E"
        );
    }

    #[test]
    fn ids_are_the_selected_ones_oldest_first() {
        let list = serde_json::json!([
            { "id": 9, "user": "a" }, { "id": 3, "user": "b" }, { "id": 5, "user": "a" }
        ]);
        assert_eq!(ids(&list, |v| v["user"] == "a"), [5, 9]);
        assert_eq!(ids(&list, |_| true), [3, 5, 9]);
    }
}
