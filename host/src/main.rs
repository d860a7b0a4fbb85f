//! The `wasmhost` command: parses flags, starts the server, and is the only place that prints errors.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use signal_hook::consts::{SIGINT, SIGTERM};

use wasmhost::server::{ServerConfig, default_workers};
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
}

#[derive(clap::Args, Clone)]
struct ServeArgs {
    /// The routes file.
    #[arg(long, default_value = "routes.json")]
    routes: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Worker threads that run handlers (default: two per core).
    #[arg(long)]
    workers: Option<usize>,
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
}

impl Default for ServeArgs {
    fn default() -> ServeArgs {
        ServeArgs {
            routes: PathBuf::from("routes.json"),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            workers: None,
            max_body: limits::DEFAULT_MAX_BODY,
            max_connections: limits::DEFAULT_MAX_CONNECTIONS,
            idle_timeout: limits::DEFAULT_IDLE_TIMEOUT.as_secs(),
            header_timeout: limits::DEFAULT_HEADER_TIMEOUT.as_secs(),
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
    init_logging();
    let result = match cli.command.unwrap_or(Command::Serve(ServeArgs::default())) {
        Command::Serve(args) => serve(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    // Many idle keep-alive connections need many descriptors.
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        tracing::warn!("cannot raise the open-file limit: {e}");
    }
    let mut server = ServerConfig::new(args.listen);
    server.workers = args.workers.unwrap_or_else(default_workers);
    server.max_connections = args.max_connections;
    server.idle_timeout = std::time::Duration::from_secs(args.idle_timeout);
    server.header_timeout = std::time::Duration::from_secs(args.header_timeout);
    let handle = wasmhost::start(Options {
        routes: args.routes,
        server,
        max_body: args.max_body,
    })?;
    let stopper = handle.stopper();
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                tracing::info!(signal, "signal received");
                stopper.stop();
            }
        })?;
    println!("wasmhost listening on http://{}", handle.local_addr());
    handle.join()
}
