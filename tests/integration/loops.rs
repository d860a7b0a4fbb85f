//! Several event loops: connections are dealt out among them, each answers its own connections' short requests itself, and an app's admission (its limit, its queue, its timeout) is one across every loop.
//!
//! The network layer runs here under a probe handler, so that what ran
//! where (the thread's name) and how many ran at once are observed directly.
//! Time bounds are generous: nothing here asserts a latency.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use wasmhost::http::parse::RequestHead;
use wasmhost::http::{Request, Response};
use wasmhost::net::{self, Answer, Handler, Lane, Plan, Refusal, Rule, ServerConfig, ServerHandle};

use crate::support::Client;

/// How long a `/slow` request holds its slot.
const SLOW: Duration = Duration::from_millis(400);

/// Routes `/where` (admitted, answered on the loop with the loop thread's
/// name), `/file` (the worker lane, as static files: answered the same way)
/// and `/slow` (on a worker, one at a time, queue of `queue`).
struct Probe {
    queue: u32,
    queue_timeout: Duration,
    slow: Duration,
    running: AtomicUsize,
    most_running: AtomicUsize,
}

impl Probe {
    fn new(queue: u32, queue_timeout: Duration, slow: Duration) -> Arc<Probe> {
        Arc::new(Probe {
            queue,
            queue_timeout,
            slow,
            running: AtomicUsize::new(0),
            most_running: AtomicUsize::new(0),
        })
    }
}

impl Handler for Probe {
    type Ticket = String;

    fn plan(&self, head: &RequestHead) -> Plan<String> {
        if head.path == "/file" {
            return Plan {
                ticket: head.path.clone(),
                body_limit: 0,
                lane: Lane::Worker,
            };
        }
        let (key, max_concurrency) = match head.path.as_str() {
            "/slow" => ("slow", 1),
            _ => ("where", 64),
        };
        Plan {
            ticket: head.path.clone(),
            body_limit: 0,
            lane: Lane::Admitted(Rule {
                key: Arc::from(key),
                max_concurrency,
                max_queue: self.queue,
                queue_timeout: self.queue_timeout,
            }),
        }
    }

    fn handle(&self, ticket: String, _request: &Request) -> Answer {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_running.fetch_max(now, Ordering::SeqCst);
        if ticket == "/slow" {
            thread::sleep(self.slow);
        }
        self.running.fetch_sub(1, Ordering::SeqCst);
        Answer::plain(Response::new(200).with_body("text/plain", thread_name()))
    }

    fn try_inline(&self, ticket: &String, _request: &Request) -> Option<Answer> {
        (ticket == "/where" || ticket == "/file")
            .then(|| Answer::plain(Response::new(200).with_body("text/plain", thread_name())))
    }

    fn refuse(&self, _ticket: String, _request: &Request, refusal: &Refusal) -> Answer {
        Answer::plain(Response::new(503).with_body("text/plain", refusal.to_string()))
    }
}

fn thread_name() -> String {
    thread::current().name().unwrap_or("?").to_owned()
}

fn start(probe: &Arc<Probe>, loops: usize) -> ServerHandle {
    let mut config = ServerConfig::new("127.0.0.1:0".parse().expect("addr"));
    config.workers = 4;
    config.loops = loops;
    net::start(config, probe.clone()).expect("server starts")
}

fn get(c: &mut Client, path: &str) -> (u16, String) {
    c.send(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes());
    let r = c.read_response();
    (r.status, r.text())
}

/// Sends `path` on every connection at once; the answers, in connection order.
fn all_at_once(clients: Vec<Client>, path: &str) -> Vec<(u16, String)> {
    thread::scope(|s| {
        let handles: Vec<_> = clients
            .into_iter()
            .map(|mut c| s.spawn(move || get(&mut c, path)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("client"))
            .collect()
    })
}

/// `count` keep-alive connections, each asked `/where` in turn (so that
/// each is accepted and placed before the next): the connections and the
/// loop thread that answered each.
fn placed(addr: SocketAddr, count: usize) -> (Vec<Client>, Vec<String>) {
    let mut clients = Vec::new();
    let mut names = Vec::new();
    for _ in 0..count {
        let mut c = Client::connect(addr);
        let (status, name) = get(&mut c, "/where");
        assert_eq!(status, 200, "{name}");
        clients.push(c);
        names.push(name);
    }
    (clients, names)
}

#[test]
fn connections_are_dealt_out_evenly_among_the_event_loops_and_each_loop_answers_its_own() {
    let probe = Probe::new(8, Duration::from_secs(30), SLOW);
    let server = start(&probe, 3);
    let (mut clients, names) = placed(server.local_addr(), 6);
    let mut per_loop: BTreeMap<&str, usize> = BTreeMap::new();
    for name in &names {
        *per_loop.entry(name.as_str()).or_default() += 1;
    }
    let expected: BTreeMap<&str, usize> = [
        ("event-loop-0", 2),
        ("event-loop-1", 2),
        ("event-loop-2", 2),
    ]
    .into_iter()
    .collect();
    assert_eq!(per_loop, expected, "answered by: {names:?}");
    // A connection stays on its loop: asked again, the same loop answers,
    // and it answers a request of the worker lane (a static file's) itself.
    for (c, name) in clients.iter_mut().zip(&names) {
        assert_eq!(get(c, "/where"), (200, name.clone()));
        assert_eq!(get(c, "/file"), (200, name.clone()));
    }
    server.shutdown().expect("clean shutdown");
}

#[test]
fn one_app_s_limit_and_queue_are_shared_by_every_event_loop() {
    // One may run, two may wait: of four requests arriving together on four
    // connections over two loops, one is refused, whatever loop it is on,
    // and the waiting ones run one at a time, started by whichever loop
    // freed the slot.
    let probe = Probe::new(2, Duration::from_secs(30), SLOW);
    let server = start(&probe, 2);
    let (clients, names) = placed(server.local_addr(), 4);
    assert!(
        names.iter().any(|n| n == "event-loop-1"),
        "the connections were not spread: {names:?}"
    );
    let started = Instant::now();
    let answers = all_at_once(clients, "/slow");
    let ok = answers.iter().filter(|(s, _)| *s == 200).count();
    let refused: Vec<_> = answers.iter().filter(|(s, _)| *s == 503).collect();
    assert_eq!((ok, refused.len()), (3, 1), "{answers:?}");
    assert!(refused[0].1.contains("queue of 2 full"), "{refused:?}");
    assert_eq!(
        probe.most_running.load(Ordering::SeqCst),
        1,
        "two /slow requests ran at once"
    );
    // Three ran one after the other.
    assert!(
        started.elapsed() >= SLOW * 3,
        "three requests of {SLOW:?} one at a time took {:?}",
        started.elapsed()
    );
    server.shutdown().expect("clean shutdown");
}

#[test]
fn a_request_waiting_past_its_timeout_is_refused_whichever_loop_owns_it() {
    // One runs for long; the other three wait 200 ms and are answered 503
    // by their own loop, long before the slot frees.
    let slow = Duration::from_secs(4);
    let probe = Probe::new(8, Duration::from_millis(200), slow);
    let server = start(&probe, 2);
    let (mut clients, names) = placed(server.local_addr(), 4);
    assert!(
        names.iter().any(|n| n == "event-loop-1"),
        "the connections were not spread: {names:?}"
    );
    let mut first = clients.remove(0);
    first.send(b"GET /slow HTTP/1.1\r\nHost: localhost\r\n\r\n");
    // The first holds the slot before the others arrive.
    let deadline = Instant::now() + Duration::from_secs(20);
    while probe.running.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "/slow never started");
        thread::sleep(Duration::from_millis(5));
    }
    let started = Instant::now();
    let answers = all_at_once(clients, "/slow");
    let waited = started.elapsed();
    for (status, body) in &answers {
        assert_eq!(*status, 503, "{answers:?}");
        assert!(body.contains("no slot free after waiting"), "{body}");
    }
    assert!(
        waited < slow,
        "the waiting requests were answered only after the slot freed ({waited:?})"
    );
    let r = first.read_response();
    assert_eq!(r.status, 200);
    assert_eq!(probe.most_running.load(Ordering::SeqCst), 1);
    server.shutdown().expect("clean shutdown");
}
