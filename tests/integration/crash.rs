//! Crash and shutdown safety of the real binary: acknowledged writes survive `kill -9`, and SIGTERM answers every request in flight.

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::support::{Answer, ChildServer, READ_TIMEOUT, guests, try_request, wat_module};

/// Times the server is killed with SIGKILL and restarted.
const KILLS: usize = 4;

/// The counter guest: every request increments one key and answers its new value.
const COUNTER: &str = include_str!("../guests/counter.wat");

/// Sends one request on a new connection (closed after it) and reads the
/// answer; `None` when the server is gone or answers nothing whole.
fn call(addr: SocketAddr, request: &str) -> Option<Answer> {
    try_request(addr, request.as_bytes(), READ_TIMEOUT)
}

fn form_post(addr: SocketAddr, path: &str, cookie: Option<&str>, form: &str) -> Option<Answer> {
    let cookie = cookie
        .map(|c| format!("Cookie: {c}\r\n"))
        .unwrap_or_default();
    call(
        addr,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\n{cookie}Content-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{form}",
            form.len()
        ),
    )
}

/// A small deterministic generator for the kill moments (seeded from the
/// clock and printed, so a failing run can be told apart).
struct Moments(u64);

impl Moments {
    fn next_millis(&mut self, low: u64, high: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        low + self.0 % (high - low)
    }
}

/// The todo and user apps plus the counter, as one routes.json in `dir`.
fn write_routes(dir: &Path) {
    let counter = wat_module(dir, "counter", COUNTER);
    let routes = json!({
        "apps": {
            "user": { "module": guests::USER, "limits": { "cpu_time": "5s" }, "grants": { "host": ["log", "storage", "sessions"] } },
            "todo": { "module": guests::TODO, "login_required": true, "grants": { "host": ["log", "storage"] } },
            "counter": { "module": counter, "grants": { "host": ["storage"] } }
        },
        "routes": [
            { "path": "/user/...", "app": "user" },
            { "path": "/todo/...", "app": "todo" },
            { "path": "/counter", "app": "counter" }
        ]
    });
    std::fs::write(
        dir.join("routes.json"),
        serde_json::to_vec_pretty(&routes).unwrap(),
    )
    .unwrap();
}

fn serve(dir: &Path) -> ChildServer {
    ChildServer::spawn(dir, &["--routes", "routes.json", "--data", "data"])
}

/// What the server acknowledged: the counter values it answered, the todo
/// titles it confirmed.
#[derive(Default)]
struct Acknowledged {
    counter: i64,
    todos: Vec<String>,
}

/// Writes through the apps until the server stops answering; returns what was acknowledged.
fn write_until_gone(addr: SocketAddr, cookie: &str, round: usize, acked: &mut Acknowledged) {
    for i in 0.. {
        match call(
            addr,
            "POST /counter HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        ) {
            Some(a) if a.status == 200 => {
                let value = i64::from_le_bytes(a.body[..8].try_into().expect("8 bytes"));
                assert!(
                    value > acked.counter,
                    "counter went back: {value} after {}",
                    acked.counter
                );
                acked.counter = value;
            }
            Some(a) => panic!("counter answered {}", a.status),
            None => return,
        }
        let title = format!("round {round} todo {i}");
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("title", &title)
            .finish();
        match form_post(addr, "/todo/add", Some(cookie), &form) {
            Some(a) if a.status == 303 => acked.todos.push(title),
            Some(a) => panic!("todo add answered {}", a.status),
            None => return,
        }
    }
}

/// Registers and signs in; the session cookie.
fn sign_up(addr: SocketAddr) -> String {
    let form = "username=crash&password=correct+horse+battery";
    let resp = form_post(addr, "/user/register", None, form).expect("register");
    assert!(
        matches!(resp.status, 302 | 303),
        "register: {}",
        resp.status
    );
    let resp = form_post(addr, "/user/login", None, form).expect("login");
    assert!(matches!(resp.status, 302 | 303), "login: {}", resp.status);
    let set = resp
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie"))
        .map(|(_, v)| v.as_str())
        .find(|c| c.starts_with("wasmhost_session="))
        .expect("a session cookie");
    set.split(';').next().unwrap_or_default().to_owned()
}

/// `PRAGMA integrity_check` of every SQLite file under `dir`; how many there were.
fn assert_databases_intact(dir: &Path) -> usize {
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).expect("data dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            checked += assert_databases_intact(&path);
            continue;
        }
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if name.ends_with("-wal") || name.ends_with("-shm") || name.ends_with("-journal") {
            continue;
        }
        let mut magic = [0u8; 16];
        let is_sqlite = std::fs::File::open(&path)
            .and_then(|mut f| f.read_exact(&mut magic))
            .is_ok()
            && magic.starts_with(b"SQLite format 3");
        if !is_sqlite {
            continue;
        }
        let db = rusqlite::Connection::open(&path).expect("open database");
        let result: String = db
            .query_row("PRAGMA integrity_check", [], |row| row.get(0))
            .expect("integrity_check");
        assert_eq!(result, "ok", "{}", path.display());
        checked += 1;
    }
    checked
}

#[test]
fn acknowledged_writes_survive_kill_dash_nine_and_nothing_is_corrupted() {
    let dir = tempfile::tempdir().unwrap();
    write_routes(dir.path());
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    println!("kill moments seeded with {seed}");
    let mut moments = Moments(seed);

    let mut server = serve(dir.path());
    let cookie = sign_up(server.addr);
    let mut acked = Acknowledged::default();
    for round in 0..KILLS {
        let addr = server.addr;
        let pid = server.child.id();
        let wait = moments.next_millis(150, 900);
        let killer = thread::spawn(move || {
            thread::sleep(Duration::from_millis(wait));
            let status = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status()
                .expect("kill");
            assert!(status.success());
        });
        write_until_gone(addr, &cookie, round, &mut acked);
        killer.join().expect("killer");
        let _ = server.child.wait();
        server = serve(dir.path());
    }
    assert!(
        acked.counter > 0 && !acked.todos.is_empty(),
        "nothing was written"
    );

    // Every acknowledged write is there, and the session survived too.
    let now = call(
        server.addr,
        "POST /counter HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .expect("counter after the crashes");
    let value = i64::from_le_bytes(now.body[..8].try_into().expect("8 bytes"));
    assert!(
        value > acked.counter,
        "acknowledged increments lost: {value} after {} acknowledged",
        acked.counter
    );
    let list = call(
        server.addr,
        &format!(
            "GET /todo/index HTTP/1.1\r\nHost: localhost\r\nCookie: {cookie}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
        ),
    )
    .expect("todo index");
    assert_eq!(list.status, 200, "the session did not survive");
    let todos: Value = serde_json::from_slice(&list.body).expect("json");
    let titles: Vec<&str> = todos
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|t| t["title"].as_str())
        .collect();
    for title in &acked.todos {
        assert!(
            titles.contains(&title.as_str()),
            "acknowledged todo {title:?} lost"
        );
    }
    println!(
        "{} increments and {} todos acknowledged across {KILLS} kills; all present",
        acked.counter,
        acked.todos.len()
    );
    let _ = server.child.kill();
    let _ = server.child.wait();
    let checked = assert_databases_intact(&dir.path().join("data"));
    assert!(checked >= 2, "only {checked} databases found to check");
}

#[test]
fn sigterm_answers_every_request_in_flight_and_accepts_no_new_connection() {
    /// Requests in flight when SIGTERM arrives.
    const IN_FLIGHT: usize = 50;
    let dir = tempfile::tempdir().unwrap();
    let slow = wat_module(dir.path(), "slow", &crate::sandbox::sleeper(1500));
    let routes = json!({
        "apps": { "slow": { "module": slow, "limits": { "max_concurrency": 64, "max_queue": 64, "queue_timeout": "30s" } } },
        "routes": [ { "path": "/slow", "app": "slow" } ]
    });
    std::fs::write(dir.path().join("routes.json"), routes.to_string()).unwrap();
    let mut server =
        ChildServer::spawn(dir.path(), &["--routes", "routes.json", "--workers", "64"]);
    let addr = server.addr;
    let clients: Vec<_> = (0..IN_FLIGHT)
        .map(|_| {
            thread::spawn(move || {
                call(
                    addr,
                    "GET /slow HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
                )
                .map(|a| (a.status, a.header("content-length").map(str::to_owned)))
            })
        })
        .collect();
    // Let every request reach the server and start.
    thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());

    // New connections are refused once the listener is closed.
    let refused = loop {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
            Err(_) => break true,
            Ok(_) if started.elapsed() > Duration::from_secs(5) => break false,
            Ok(_) => thread::sleep(Duration::from_millis(20)),
        }
    };
    assert!(
        refused,
        "the server still accepted connections 5 s after SIGTERM"
    );

    let answers: Vec<_> = clients
        .into_iter()
        .map(|c| c.join().expect("client"))
        .collect();
    let ok = answers
        .iter()
        .filter(|a| matches!(a, Some((200, _))))
        .count();
    assert_eq!(
        ok, IN_FLIGHT,
        "not every request in flight was answered: {answers:?}"
    );

    let exit = loop {
        if let Some(exit) = server.child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the server did not exit within its grace period"
        );
        thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(exit.code(), Some(0), "exit status {exit:?}");
}
