//! The `wasmhost` command: parses flags, starts the server, and is the only place that prints errors.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

use wasmhost::net::{ServerConfig, default_loops, default_workers};
use wasmhost::{Options, limits};

#[derive(Parser)]
#[command(
    name = "wasmhost",
    version,
    about = "Serve web handlers compiled to WebAssembly"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the apps and static directories named in a routes file (the default).
    Serve(ServeArgs),
    /// Deploy a module to an app of a running host (through its admin API).
    Deploy {
        /// The app, as named in routes.json.
        app: String,
        /// The module to deploy.
        file: PathBuf,
        #[command(flatten)]
        admin: AdminClientArgs,
    },
    /// Roll an app of a running host back to its previous version.
    Rollback {
        /// The app, as named in routes.json.
        app: String,
        #[command(flatten)]
        admin: AdminClientArgs,
    },
    /// Show the apps of a running host: routes, version, load time, status.
    Status {
        /// Print the admin API's JSON as is.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        admin: AdminClientArgs,
    },
    /// Check a routes file and load every module it names, without serving.
    Check {
        /// The routes file.
        #[arg(long, default_value = "routes.json")]
        routes: PathBuf,
    },
}

/// How the CLI reaches a running host's admin API.
#[derive(clap::Args)]
struct AdminClientArgs {
    /// The admin API's base URL.
    #[arg(
        long = "admin",
        default_value = "http://127.0.0.1:8081",
        env = "WASMHOST_ADMIN"
    )]
    url: String,
    /// The admin token.
    #[arg(long, env = "WASMHOST_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// A file holding the admin token.
    #[arg(long)]
    admin_token_file: Option<PathBuf>,
}

#[derive(clap::Args, Clone)]
struct ServeArgs {
    /// The routes file.
    #[arg(long, default_value = "routes.json")]
    routes: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Worker threads that run handlers (default: eight per core, at least 16).
    #[arg(long)]
    workers: Option<usize>,
    /// Event-loop threads that own the connections and answer short
    /// requests themselves (default: one per core).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
    loops: Option<u16>,
    /// Largest request body, in bytes, for routes without an app limit.
    #[arg(long, default_value_t = limits::DEFAULT_MAX_BODY)]
    max_body: u64,
    /// Most open connections.
    #[arg(long, default_value_t = limits::DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,
    /// Seconds a keep-alive connection may stay idle.
    #[arg(long, default_value_t = limits::DEFAULT_IDLE_TIMEOUT.as_secs())]
    idle_timeout: u64,
    /// Seconds allowed to receive a request's header section.
    #[arg(long, default_value_t = limits::DEFAULT_HEADER_TIMEOUT.as_secs())]
    header_timeout: u64,
    /// Address of the admin API (which runs only when a token is set).
    #[arg(long, default_value = wasmhost::control::admin::DEFAULT_LISTEN)]
    admin_listen: SocketAddr,
    /// Token that admin requests must present as `Authorization: Bearer TOKEN`.
    #[arg(long, env = "WASMHOST_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// A file holding the admin token.
    #[arg(long)]
    admin_token_file: Option<PathBuf>,
    /// Directory where deployed modules are kept.
    #[arg(long, default_value = "data")]
    data: PathBuf,
    /// Where apps' storage and sessions live: `sqlite` (files under --data,
    /// the default) or a Redis server shared by a cluster of hosts
    /// (`redis://[:PASSWORD@]HOST:PORT/DB` or `redis+unix:///PATH?db=N`),
    /// which also carries deploys and rollbacks to every host
    /// (docs/scale-out.md).
    #[arg(
        long,
        default_value = "sqlite",
        env = "WASMHOST_STORAGE",
        hide_env_values = true
    )]
    storage: String,
    /// Prefix of every Redis key this cluster writes.
    #[arg(long, default_value = wasmhost::storage::redis_store::DEFAULT_PREFIX)]
    redis_prefix: String,
    /// This host's name in its cluster (default: the machine's host name and
    /// the listening port).
    #[arg(long)]
    node: Option<String>,
    /// Do not watch routes.json and the modules for changes.
    #[arg(long)]
    no_watch: bool,
    /// Compile every new version optimized before it serves: deploys of a
    /// version never compiled before take seconds instead of serving on
    /// baseline code within one (docs/operations.md, "Status").
    #[arg(long)]
    no_baseline_tier: bool,
    /// Run every app request on a worker thread, never on the event loop
    /// first (docs/ARCHITECTURE.md, "Execution model": short requests of
    /// guests that reach nothing outside their instance answer on the loop).
    #[arg(long)]
    no_inline: bool,
}

impl Default for ServeArgs {
    fn default() -> ServeArgs {
        ServeArgs {
            routes: PathBuf::from("routes.json"),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            workers: None,
            loops: None,
            max_body: limits::DEFAULT_MAX_BODY,
            max_connections: limits::DEFAULT_MAX_CONNECTIONS,
            idle_timeout: limits::DEFAULT_IDLE_TIMEOUT.as_secs(),
            header_timeout: limits::DEFAULT_HEADER_TIMEOUT.as_secs(),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
            admin_token: std::env::var("WASMHOST_ADMIN_TOKEN").ok(),
            admin_token_file: None,
            data: PathBuf::from("data"),
            storage: std::env::var("WASMHOST_STORAGE").unwrap_or_else(|_| "sqlite".into()),
            redis_prefix: wasmhost::storage::redis_store::DEFAULT_PREFIX.into(),
            node: None,
            no_watch: false,
            no_baseline_tier: false,
            no_inline: false,
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            // One line: clap's first line names the problem; the usage follows on --help.
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            eprintln!("{first} (see `wasmhost --help`)");
            return ExitCode::from(2);
        }
    };
    let log_guard = init_logging();
    let result = match cli.command.unwrap_or(Command::Serve(ServeArgs::default())) {
        Command::Serve(args) => serve(args),
        Command::Deploy { app, file, admin } => deploy(&app, &file, &admin),
        Command::Rollback { app, admin } => rollback(&app, &admin),
        Command::Status { json, admin } => status(json, &admin),
        Command::Check { routes } => check(&routes),
    };
    // Flush the log before the error line, so that the error comes last.
    drop(log_guard);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr through a writer thread, so that a request never waits
/// on a write syscall for its access line; the guard flushes them at exit.
fn init_logging() -> tracing_appender::non_blocking::WorkerGuard {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Not lossy: under a log burst, requests wait rather than lines vanish.
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .finish(std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    guard
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    // Many idle keep-alive connections need many descriptors.
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        tracing::warn!("cannot raise the open-file limit: {e}");
    }
    let mut server = ServerConfig::new(args.listen);
    server.workers = args.workers.unwrap_or_else(default_workers);
    server.loops = args.loops.map_or_else(default_loops, usize::from);
    server.inline = !args.no_inline;
    server.max_connections = args.max_connections;
    server.idle_timeout = std::time::Duration::from_secs(args.idle_timeout);
    server.header_timeout = std::time::Duration::from_secs(args.header_timeout);
    let redis = redis_settings(&args)?;
    let token = read_token(args.admin_token, args.admin_token_file.as_deref())?;
    let hot = wasmhost::HotSwap {
        watch: !args.no_watch,
        admin: token.map(|token| wasmhost::control::admin::AdminConfig {
            listen: args.admin_listen,
            token,
        }),
        data_dir: Some(args.data.clone()),
        baseline_tier: !args.no_baseline_tier,
    };
    let handle = wasmhost::start_host(
        Options {
            routes: args.routes,
            server,
            max_body: args.max_body,
            data_dir: Some(args.data),
            redis,
        },
        hot,
    )?;
    let stopper = handle.stopper();
    let reload = handle.reload_trigger();
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                tracing::info!(signal, "signal received");
                if signal == SIGHUP {
                    reload.reload();
                    continue;
                }
                if let Some(stopper) = &stopper {
                    stopper.stop();
                }
                break;
            }
        })?;
    println!("wasmhost listening on http://{}", handle.local_addr());
    if let Some(addr) = handle.admin_addr() {
        println!("admin API on http://{addr}");
    }
    handle.join()
}

/// The admin token from a file (first) or a flag/environment value; an empty one is an error.
/// `--storage`: `sqlite`, or the Redis settings of a cluster.
fn redis_settings(args: &ServeArgs) -> anyhow::Result<Option<wasmhost::RedisSettings>> {
    let storage = args.storage.trim();
    if storage.eq_ignore_ascii_case("sqlite") {
        return Ok(None);
    }
    let scheme = storage.split("://").next().unwrap_or("");
    if scheme == "rediss" {
        anyhow::bail!(
            "--storage: TLS to Redis (rediss://) is not built into wasmhost; reach Redis on a private network, a Unix socket (redis+unix://) or a TLS tunnel"
        );
    }
    if !["redis", "redis+unix", "unix"].contains(&scheme) || !storage.contains("://") {
        anyhow::bail!(
            "--storage: expected `sqlite` or a Redis URL (redis://HOST:PORT/DB, redis+unix:///PATH)"
        );
    }
    let node = match &args.node {
        Some(node) if !node.trim().is_empty() => node.trim().to_owned(),
        Some(_) => anyhow::bail!("--node: the name is empty"),
        None => {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .unwrap_or_else(|_| "wasmhost".into());
            format!("{host}:{}", args.listen.port())
        }
    };
    Ok(Some(wasmhost::RedisSettings {
        url: storage.to_owned(),
        prefix: args.redis_prefix.clone(),
        node,
    }))
}

fn read_token(
    token: Option<String>,
    file: Option<&std::path::Path>,
) -> anyhow::Result<Option<String>> {
    let token = match file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| {
                    anyhow::anyhow!("cannot read the admin token file {}: {e}", path.display())
                })?
                .trim()
                .to_owned(),
        ),
        None => token.map(|t| t.trim().to_owned()),
    };
    match token {
        Some(t) if t.is_empty() => anyhow::bail!("the admin token is empty"),
        other => Ok(other),
    }
}

/// One admin API call; a non-2xx answer becomes an error carrying its reason.
fn admin_call(
    args: &AdminClientArgs,
    method: &str,
    path: &str,
    body: &[u8],
) -> anyhow::Result<serde_json::Value> {
    let token = read_token(args.admin_token.clone(), args.admin_token_file.as_deref())?
        .ok_or_else(|| {
            anyhow::anyhow!("no admin token: pass --admin-token or set WASMHOST_ADMIN_TOKEN")
        })?;
    let answer = wasmhost::control::admin::call(&args.url, &token, method, path, body)?;
    if !(200..300).contains(&answer.status) {
        anyhow::bail!("{} ({})", answer.reason(), answer.status);
    }
    serde_json::from_str(&answer.body)
        .map_err(|e| anyhow::anyhow!("malformed answer from {}: {e}", args.url))
}

fn deploy(app: &str, file: &std::path::Path, admin: &AdminClientArgs) -> anyhow::Result<()> {
    let len = std::fs::metadata(file)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?
        .len();
    if len > wasmhost::control::deploy::MAX_MODULE_BYTES {
        anyhow::bail!(
            "{} is {len} bytes; the limit is {} bytes",
            file.display(),
            wasmhost::control::deploy::MAX_MODULE_BYTES
        );
    }
    let bytes =
        std::fs::read(file).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
    let answer = admin_call(admin, "PUT", &format!("/apps/{app}/module"), &bytes)
        .map_err(|e| e.context(format!("deploying {} to {app}", file.display())))?;
    let version = answer["version"].as_str().unwrap_or("?");
    if answer["changed"] == false {
        println!("{app} already runs version {version}");
    } else {
        println!("deployed {app} version {version}");
    }
    Ok(())
}

fn rollback(app: &str, admin: &AdminClientArgs) -> anyhow::Result<()> {
    let answer = admin_call(admin, "POST", &format!("/apps/{app}/rollback"), b"")
        .map_err(|e| e.context(format!("rolling back {app}")))?;
    println!(
        "rolled back {app} to version {}",
        answer["version"].as_str().unwrap_or("?")
    );
    Ok(())
}

fn status(json: bool, admin: &AdminClientArgs) -> anyhow::Result<()> {
    let answer = admin_call(admin, "GET", "/apps", b"")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(());
    }
    println!(
        "{:<20} {:<12} {:<6} {:<6} {:<9} {:<29} ROUTES",
        "APP", "VERSION", "ORIGIN", "STATUS", "TIER", "LOADED"
    );
    for app in answer["apps"].as_array().into_iter().flatten() {
        let loaded = app["loaded_at"].as_u64().map_or_else(String::new, |secs| {
            httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
        });
        let routes: Vec<String> = app["routes"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| match r["host"].as_str() {
                Some(host) => format!("{host}{}", r["path"].as_str().unwrap_or("")),
                None => r["path"].as_str().unwrap_or("").to_owned(),
            })
            .collect();
        let version = app["version"].as_str().unwrap_or("");
        println!(
            "{:<20} {:<12} {:<6} {:<6} {:<9} {:<29} {}",
            app["name"].as_str().unwrap_or(""),
            &version[..version.len().min(12)],
            app["origin"].as_str().unwrap_or(""),
            app["status"].as_str().unwrap_or(""),
            app["tier"].as_str().unwrap_or(""),
            loaded,
            routes.join(" ")
        );
        if let Some(message) = app["last_error"]["message"].as_str() {
            println!("    last error: {message}");
        }
    }
    if let Some(message) = answer["config_error"]["message"].as_str() {
        println!("config error: {message}");
    }
    print_cluster(&answer["cluster"]);
    Ok(())
}

/// The NODES table of `wasmhost status` for a host in a cluster: every
/// node's version of every app.
fn print_cluster(cluster: &serde_json::Value) {
    if cluster.is_null() {
        return;
    }
    println!();
    println!(
        "cluster via {} (this node: {})",
        cluster["redis"].as_str().unwrap_or("?"),
        cluster["node"].as_str().unwrap_or("?")
    );
    if let Some(error) = cluster["error"].as_str() {
        println!("cluster status unavailable: {error}");
        return;
    }
    println!(
        "{:<28} {:<20} {:<12} {:<12} STATUS",
        "NODE", "APP", "VERSION", "CLUSTER"
    );
    for node in cluster["nodes"].as_array().into_iter().flatten() {
        let name = node["node"].as_str().unwrap_or("");
        let shown = if node["stale"].as_bool() == Some(true) {
            format!("{name} (not seen)")
        } else {
            name.to_owned()
        };
        for (app, state) in node["apps"].as_object().into_iter().flatten() {
            let short = |v: &serde_json::Value| {
                let v = v.as_str().unwrap_or("-");
                v[..v.len().min(12)].to_owned()
            };
            println!(
                "{:<28} {:<20} {:<12} {:<12} {}",
                shown,
                app,
                short(&state["version"]),
                short(&cluster["versions"][app]),
                state["status"].as_str().unwrap_or("")
            );
            if let Some(message) = state["last_error"]["message"].as_str() {
                println!("    last error: {message}");
            }
        }
    }
}

/// Like `nginx -t`: everything `serve` would load, without serving.
fn check(routes: &std::path::Path) -> anyhow::Result<()> {
    /// Instance slots for validation: one module is instantiated at a time.
    const CHECK_SLOTS: u32 = 4;
    let runtime = wasmhost::sandbox::Runtime::new(CHECK_SLOTS)?;
    wasmhost::app::load_site(routes, &runtime)?;
    println!("ok");
    Ok(())
}
