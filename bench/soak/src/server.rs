//! The server under test: a temp dir with its routes.json, guests and static files, and the real `wasmhost` binary started on 127.0.0.1 with its admin API.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::guests;

/// Worker threads for the server: its own default on a 2-core machine, set
/// explicitly so that the thread count does not depend on the machine.
pub const WORKERS: usize = 16;

/// The server's keep-alive idle timeout, in seconds: short enough that a
/// 2-minute run sees the held idle connections closed and reopened several
/// times (the default is 60 s).
pub const IDLE_TIMEOUT_SECS: u64 = 20;

/// The server's header timeout, in seconds: short enough that each slowloris
/// client is cut off many times in a 2-minute run (the default is 10 s).
pub const HEADER_TIMEOUT_SECS: u64 = 5;

/// The loop guest's CPU budget: long enough to be a real runaway, short
/// enough that stopping it every few hundred ms costs little of 2 cores.
const SPIN_CPU_TIME: &str = "50ms";

/// The memory bomb's limit: small, so each attempt maps and frees little.
const BOMB_MEMORY: &str = "4 MiB";

/// The flood's output limit: far below what it writes per request.
const FLOOD_LOG_OUTPUT: &str = "4 KiB";

/// Longest wait for the server to print its addresses: loading four real
/// apps compiles them (from the cache after the first run) on a busy machine.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// Longest wait for a clean exit after SIGTERM: the server's own grace period
/// is 10 s, plus time to flush its log.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// How often the exit is looked for after SIGTERM: a clean exit is seen
/// within a twentieth of a second.
const STOP_POLL: Duration = Duration::from_millis(50);

/// Random bytes in the admin token: 128 bits.
const TOKEN_BYTES: usize = 16;

/// The guests of the real apps, as `host/build.rs` leaves them.
const GUEST_DIR: &str = "target/guests/wasm32-wasip1/release";

/// Bodies of the two versions of the hot-swapped module.
pub const VERSIONS: [&str; 2] = ["soak v1", "soak v2"];

/// What the run sets up: paths and module bytes the traffic needs.
pub struct Setup {
    pub dir: PathBuf,
    /// Static files served at `/static/NAME`, with their contents.
    pub static_files: Vec<(String, Vec<u8>)>,
    /// The two versions of the hot-swapped module, compiled.
    pub versions: [Vec<u8>; 2],
    /// The module file of app `swapfile`, which the watcher follows.
    pub swapfile: PathBuf,
}

fn compile(name: &str, wat: &str) -> Result<Vec<u8>, String> {
    wat::parse_str(wat).map_err(|e| format!("{name}: bad WAT: {e}"))
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    std::fs::write(path, bytes).map_err(|e| format!("writing {}: {e}", path.display()))
}

/// Writes routes.json, the guests and the static files into `dir`.
pub fn prepare(dir: &Path, repo: &Path) -> Result<Setup, String> {
    let guests_dir = repo.join(GUEST_DIR);
    let mut real = serde_json::Map::new();
    for app in ["hello", "user", "todo", "weibo"] {
        let path = guests_dir.join(format!("{app}.wasm"));
        if !path.is_file() {
            return Err(format!(
                "{} is missing: build first (`cargo build -p wasmhost` builds the guests)",
                path.display()
            ));
        }
        real.insert(app.into(), json!(path));
    }
    let statics = dir.join("static");
    std::fs::create_dir_all(&statics).map_err(|e| format!("{}: {e}", statics.display()))?;
    let mut static_files = Vec::new();
    let source = repo.join("static");
    let entries =
        std::fs::read_dir(&source).map_err(|e| format!("reading {}: {e}", source.display()))?;
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.is_file() {
            continue;
        }
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        write(&statics.join(&name), &bytes)?;
        static_files.push((name, bytes));
    }
    if static_files.is_empty() {
        return Err(format!("no static files in {}", source.display()));
    }
    static_files.sort();

    let guest = |name: &str, wat: &str| -> Result<PathBuf, String> {
        let path = dir.join(format!("{name}.wasm"));
        write(&path, &compile(name, wat)?)?;
        Ok(path)
    };
    let versions = [
        compile("v1", &guests::versioned(VERSIONS[0]))?,
        compile("v2", &guests::versioned(VERSIONS[1]))?,
    ];
    let swap = dir.join("swap.wasm");
    write(&swap, &versions[0])?;
    let swapfile = dir.join("swapfile.wasm");
    write(&swapfile, &versions[0])?;
    let routes = json!({
        "apps": {
            "hello": { "module": real["hello"] },
            // Password hashing is slow on purpose: a busy machine must not turn it into a 504.
            "user": { "module": real["user"], "limits": { "cpu_time": "5s" }, "grants": { "host": ["log", "storage", "sessions"] } },
            "todo": { "module": real["todo"], "login_required": true, "grants": { "host": ["log", "storage"] } },
            "weibo": { "module": real["weibo"], "grants": { "host": ["log", "storage"] } },
            "spin": { "module": guest("spin", &guests::spin())?, "limits": { "cpu_time": SPIN_CPU_TIME } },
            "bomb": { "module": guest("bomb", &guests::memory_bomb())?, "limits": { "memory": BOMB_MEMORY } },
            "flood": { "module": guest("flood", &guests::flood())?, "limits": { "log_output": FLOOD_LOG_OUTPUT } },
            "trap": { "module": guest("trap", &guests::trap())? },
            "swap": { "module": swap },
            "swapfile": { "module": swapfile },
        },
        "routes": [
            { "path": "/hello", "app": "hello" },
            { "path": "/hello/...", "app": "hello" },
            { "path": "/user/...", "app": "user" },
            { "path": "/todo/...", "app": "todo" },
            { "path": "/weibo/...", "app": "weibo" },
            { "path": "/static/...", "static": statics },
            { "path": "/spin", "app": "spin" },
            { "path": "/bomb", "app": "bomb" },
            { "path": "/flood", "app": "flood" },
            { "path": "/trap", "app": "trap" },
            { "path": "/swap", "app": "swap" },
            { "path": "/swapfile", "app": "swapfile" },
        ]
    });
    let text = serde_json::to_vec_pretty(&routes).map_err(|e| e.to_string())?;
    write(&dir.join("routes.json"), &text)?;
    Ok(Setup {
        dir: dir.to_owned(),
        static_files,
        versions,
        swapfile: dir.join("swapfile.wasm"),
    })
}

/// A random admin token (from the kernel's generator; it only guards a
/// loopback socket for the length of the run).
pub fn random_token() -> Result<String, String> {
    let mut bytes = [0u8; TOKEN_BYTES];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| format!("reading /dev/urandom: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The running server; killed on drop if it was not stopped.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
}

/// The address after `http://` on a line the server printed.
fn address(line: &str) -> Option<SocketAddr> {
    line.trim().rsplit("http://").next()?.parse().ok()
}

impl Server {
    /// Starts `wasmhost serve` in `setup.dir`, logging to `log`, and waits
    /// for the two lines with its addresses.
    pub fn start(binary: &Path, setup: &Setup, token: &str, log: &Path) -> Result<Server, String> {
        let log_file =
            std::fs::File::create(log).map_err(|e| format!("creating {}: {e}", log.display()))?;
        let mut child = Command::new(binary)
            .arg("serve")
            .args(["--routes", "routes.json"])
            .args(["--listen", "127.0.0.1:0"])
            .args(["--admin-listen", "127.0.0.1:0"])
            .args(["--data", "data"])
            .args(["--workers", &WORKERS.to_string()])
            .args(["--idle-timeout", &IDLE_TIMEOUT_SECS.to_string()])
            .args(["--header-timeout", &HEADER_TIMEOUT_SECS.to_string()])
            .current_dir(&setup.dir)
            .env("WASMHOST_ADMIN_TOKEN", token)
            // Warnings and errors only: an access line per request would be
            // hundreds of megabytes in a long run.
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .spawn()
            .map_err(|e| format!("starting {}: {e}", binary.display()))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        // Read the two address lines on a thread, so that a server that hangs
        // at start-up is noticed after START_TIMEOUT.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let listen = lines.next().and_then(Result::ok);
            let admin = lines.next().and_then(Result::ok);
            let _ = tx.send((listen, admin));
            // Drain the rest, so that the server never blocks on a full pipe.
            for _ in lines.map_while(Result::ok) {}
        });
        let lines = rx.recv_timeout(START_TIMEOUT);
        let mut server = Server {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let Ok((Some(listen), Some(admin))) = lines else {
            return Err(format!(
                "the server printed no addresses within {START_TIMEOUT:?}: see {}",
                log.display()
            ));
        };
        match (address(&listen), address(&admin)) {
            (Some(addr), Some(admin)) if addr.ip().is_loopback() && admin.ip().is_loopback() => {
                server.addr = addr;
                server.admin = admin;
                Ok(server)
            }
            _ => Err(format!("unexpected start-up lines {listen:?}, {admin:?}")),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status, if the server has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGTERM, then waits for the exit; an error if it is not a clean one in time.
    pub fn stop(mut self) -> Result<(), String> {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .map_err(|e| format!("running kill: {e}"))?;
        if !sent.success() {
            return Err("kill -TERM failed".into());
        }
        let started = Instant::now();
        while started.elapsed() < STOP_TIMEOUT {
            if let Some(status) = self.exited() {
                return if status.success() {
                    Ok(())
                } else {
                    Err(format!("the server exited with {status} after SIGTERM"))
                };
            }
            std::thread::sleep(STOP_POLL);
        }
        Err(format!(
            "the server did not exit within {STOP_TIMEOUT:?} of SIGTERM"
        ))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.exited().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
