//! End to end in a real browser: headless Chromium driven through ChromeDriver (WebDriver) by fantoccini.
//!
//! Needs the Debian packages `chromium` and `chromium-driver` (`.ci/run`
//! installs them). Without them the test fails under `CI=true` and says
//! loudly that it skipped otherwise.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::support::TestServer;

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// How long to wait for ChromeDriver to come up and for pages to change:
/// generous, since CI machines are shared.
const BROWSER_WAIT: Duration = Duration::from_secs(30);

/// The browser's tools, or `None` (after saying so) when they are missing locally.
fn browser_tools() -> Option<(PathBuf, PathBuf)> {
    let driver = PathBuf::from(CHROMEDRIVER);
    let chromium = PathBuf::from(CHROMIUM);
    if driver.is_file() && chromium.is_file() {
        return Some((driver, chromium));
    }
    let message = format!(
        "browser test needs {CHROMEDRIVER} and {CHROMIUM} (apt-get install -y chromium chromium-driver)"
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{message}: missing under CI");
    }
    eprintln!("\n*** SKIPPED: {message} ***\n");
    None
}

/// ChromeDriver on a free loopback port; killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start(path: &Path) -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < BROWSER_WAIT,
                "chromedriver did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn submit(client: &Client, action: &str, fields: &[(&str, &str)]) {
    let form = client
        .form(Locator::Css(&format!("form[action='{action}']")))
        .await
        .unwrap_or_else(|e| panic!("no form for {action}: {e}"));
    for (name, value) in fields {
        form.set_by_name(name, value)
            .await
            .unwrap_or_else(|e| panic!("{action}: field {name}: {e}"));
    }
    form.submit()
        .await
        .unwrap_or_else(|e| panic!("{action}: submit: {e}"));
}

async fn wait_for_text(client: &Client, needle: &str) -> String {
    let started = Instant::now();
    loop {
        // The page may be replaced between finding <body> and reading it.
        let body = match client.find(Locator::Css("body")).await {
            Ok(el) => el.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if body.contains(needle) {
            return body;
        }
        assert!(
            started.elapsed() < BROWSER_WAIT,
            "{needle:?} never appeared; page:\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether a PNG has real content: more than a handful of distinct colours.
fn distinct_colours(png_bytes: &[u8]) -> usize {
    let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("PNG size")];
    let info = reader.next_frame(&mut buf).expect("PNG frame");
    let channels = info.color_type.samples();
    let mut colours = std::collections::HashSet::new();
    for px in buf[..info.buffer_size()].chunks(channels) {
        colours.insert(px.to_vec());
    }
    colours.len()
}

#[test]
fn a_person_uses_the_apps_in_a_real_browser() {
    let Some((driver_path, chromium)) = browser_tools() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let routes = crate::apps::apps_routes(dir.path());
    let server = TestServer::start_in(dir, routes, |_| {});
    let base = format!("http://{}", server.addr);
    let driver = Driver::start(&driver_path);
    let profile = tempfile::tempdir().unwrap();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1200,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&driver.url)
            .await
            .expect("WebDriver session");

        // Anonymous visitors are sent to the login page.
        client.goto(&format!("{base}/todo/index")).await.unwrap();
        assert_eq!(client.current_url().await.unwrap().path(), "/user/login");

        // Register, then log in.
        client.goto(&format!("{base}/user/register")).await.unwrap();
        submit(
            &client,
            "/user/register",
            &[("username", "alice"), ("password", "correct horse battery")],
        )
        .await;
        client.goto(&format!("{base}/user/login")).await.unwrap();
        submit(
            &client,
            "/user/login",
            &[("username", "alice"), ("password", "correct horse battery")],
        )
        .await;
        wait_for_text(&client, "alice").await;
        assert_eq!(client.current_url().await.unwrap().path(), "/todo/index");

        // Add, edit (and complete), delete a todo.
        submit(&client, "/todo/add", &[("title", "buy milk")]).await;
        wait_for_text(&client, "buy milk").await;
        client
            .find(Locator::Css("a[href^='/todo/edit']"))
            .await
            .expect("an edit link")
            .click()
            .await
            .unwrap();
        let form = client
            .form(Locator::Css("form[action='/todo/update']"))
            .await
            .expect("edit form");
        form.set_by_name("title", "buy oat milk").await.unwrap();
        let done = client
            .find(Locator::Css(
                "form[action='/todo/update'] input[name='done']",
            ))
            .await
            .unwrap();
        if !done.is_selected().await.unwrap() {
            done.click().await.unwrap();
        }
        form.submit().await.unwrap();
        let page = wait_for_text(&client, "buy oat milk").await;
        assert!(!page.contains("buy milk\n"), "old title still shown");
        submit(&client, "/todo/delete", &[]).await;
        let started = Instant::now();
        while client.source().await.unwrap().contains("buy oat milk") {
            assert!(started.elapsed() < BROWSER_WAIT, "todo not deleted");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        // Post on weibo (markup shows as text) and comment.
        client.goto(&format!("{base}/weibo/index")).await.unwrap();
        submit(
            &client,
            "/weibo/add",
            &[("content", "<script>alert(1)</script> hello")],
        )
        .await;
        wait_for_text(&client, "<script>alert(1)</script> hello").await;
        assert!(client.get_alert_text().await.is_err(), "a script ran");
        submit(&client, "/weibo/comment/add", &[("content", "nice post")]).await;
        wait_for_text(&client, "nice post").await;

        let png = client.screenshot().await.expect("screenshot");
        let shot = std::env::temp_dir().join("wasmhost-browser-test.png");
        std::fs::write(&shot, &png).unwrap();
        let colours = distinct_colours(&png);
        assert!(
            colours > 16,
            "screenshot {} looks blank ({colours} colours)",
            shot.display()
        );
        client.close().await.unwrap();
    });
}
