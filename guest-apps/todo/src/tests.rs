//! Unit tests of the todo app against the SDK's native storage stand-in.

use super::*;

const FORM: &str = "application/x-www-form-urlencoded";

fn body(resp: &Response) -> String {
    String::from_utf8_lossy(&resp.body).into_owned()
}

fn get(target: &str, user: Option<(&str, &str)>, json: bool) -> Response {
    let mut req = Request::new("GET", target);
    if let Some((id, name)) = user {
        req = req.with_user(id, name);
    }
    if json {
        req = req.with_header("Accept", "application/json");
    }
    handle(req)
}

fn post(target: &str, form: &str, user: Option<(&str, &str)>, json: bool) -> Response {
    let mut req = Request::new("POST", target)
        .with_header("Content-Type", FORM)
        .with_body(form);
    if let Some((id, name)) = user {
        req = req.with_user(id, name);
    }
    if json {
        req = req.with_header("Accept", "application/json");
    }
    handle(req)
}

const ANN: Option<(&str, &str)> = Some(("1", "ann"));
const BOB: Option<(&str, &str)> = Some(("2", "bob"));

fn list(user: Option<(&str, &str)>) -> Vec<Value> {
    let resp = get("/todo/index", user, true);
    assert_eq!(resp.status, 200, "{}", body(&resp));
    serde_json::from_slice(&resp.body).unwrap()
}

#[test]
fn crud_through_html_forms() {
    let resp = post("/todo/add", "title=Buy+milk", ANN, false);
    assert_eq!(resp.status, 303);
    assert_eq!(resp.header("location"), Some("/todo/index"));
    let todos = list(ANN);
    assert_eq!(todos.len(), 1);
    assert_eq!(todos[0]["id"], 1);
    assert_eq!(todos[0]["title"], "Buy milk");
    assert_eq!(todos[0]["done"], false);
    assert!(todos[0]["created_at"].as_str().unwrap().ends_with('Z'));
    assert!(todos[0]["updated_at"].is_string());

    let page = get("/todo/index", ANN, false);
    assert_eq!(page.status, 200);
    let html = body(&page);
    assert!(html.contains("Buy milk"), "{html}");
    assert!(html.contains("UTC"), "times are shown: {html}");
    assert!(html.contains("Signed in as"), "{html}");

    let edit = get("/todo/edit?id=1", ANN, false);
    assert_eq!(edit.status, 200);
    assert!(body(&edit).contains("value=\"Buy milk\""));

    let resp = post(
        "/todo/update",
        "id=1&title=Buy+oat+milk&done=on",
        ANN,
        false,
    );
    assert_eq!(resp.status, 303);
    let todos = list(ANN);
    assert_eq!(
        (todos[0]["title"].as_str(), todos[0]["done"].as_bool()),
        (Some("Buy oat milk"), Some(true))
    );
    // A missing `done` (unchecked box) is false; `true`/`false` work too.
    post("/todo/update", "id=1&title=x", ANN, false);
    assert_eq!(list(ANN)[0]["done"], false);
    post("/todo/update", "id=1&title=x&done=true", ANN, false);
    assert_eq!(list(ANN)[0]["done"], true);
    post("/todo/update", "id=1&title=x&done=false", ANN, false);
    assert_eq!(list(ANN)[0]["done"], false);

    let resp = post("/todo/delete", "id=1", ANN, false);
    assert_eq!(resp.status, 303);
    assert!(list(ANN).is_empty());
    assert_eq!(post("/todo/delete", "id=1", ANN, false).status, 404);
}

/// The `<li>` of todo `id` on the index page.
fn row_html(html: &str, id: u64) -> &str {
    let start = html
        .find(&format!("id=\"todo-{id}\""))
        .unwrap_or_else(|| panic!("no row for todo {id}: {html}"));
    let end = html[start..].find("</li>").expect("the row ends") + start;
    &html[start..end]
}

#[test]
fn index_rows_show_the_toggle_for_their_state_and_both_times() {
    let carl = Some(("3", "carl"));
    post("/todo/add", "title=Open", carl, false);
    post("/todo/add", "title=Closed", carl, false);
    post("/todo/update", "id=2&title=Closed&done=on", carl, false);
    let created = list(carl)[1]["created_at"].as_str().unwrap().to_owned();
    let html = body(&get("/todo/index", carl, false));

    let open = row_html(&html, 1);
    assert!(!open.contains("item done"), "{open}");
    assert!(open.contains("name=\"done\" value=\"true\""), "{open}");
    assert!(open.contains("title=\"Mark as done\">&#9744;"), "{open}");

    let closed = row_html(&html, 2);
    assert!(html.contains("class=\"item done\" id=\"todo-2\""), "{html}");
    assert!(!closed.contains("name=\"done\""), "{closed}");
    assert!(
        closed.contains("title=\"Mark as not done\">&#9745;"),
        "{closed}"
    );

    // `2026-12-03T10:33:07Z` is shown as `2026-12-03 10:33 UTC`.
    let shown = format!("created {} {} UTC", &created[..10], &created[11..16]);
    assert!(closed.contains(&shown), "{shown} in {closed}");
    assert!(closed.contains(" · updated "), "{closed}");
}

#[test]
fn json_clients_get_objects() {
    let resp = post("/todo/add", "title=a", ANN, true);
    assert_eq!(resp.status, 201);
    let todo: Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(
        (todo["id"].as_u64(), todo["title"].as_str()),
        (Some(1), Some("a"))
    );
    let resp = handle(
        Request::new("POST", "/todo/update")
            .with_user("1", "ann")
            .with_header("Accept", "application/json")
            .with_header("Content-Type", "application/json")
            .with_body(r#"{"id": 1, "title": "b", "done": true}"#),
    );
    assert_eq!(resp.status, 200, "{}", body(&resp));
    let todo: Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(todo["done"], true);
    let resp = post("/todo/delete", "id=1", ANN, true);
    assert_eq!(body(&resp), r#"{"deleted":1}"#);
}

#[test]
fn todos_are_per_user_and_others_get_403() {
    post("/todo/add", "title=ann%27s", ANN, false);
    post("/todo/add", "title=bob%27s", BOB, false);
    assert_eq!(list(ANN).len(), 1);
    assert_eq!(list(BOB)[0]["title"], "bob's");
    let table = [
        ("GET", "/todo/edit?id=1", ""),
        ("POST", "/todo/update", "id=1&title=mine"),
        ("POST", "/todo/delete", "id=1"),
    ];
    for (method, target, form) in table {
        let resp = if method == "GET" {
            get(target, BOB, false)
        } else {
            post(target, form, BOB, false)
        };
        assert_eq!(resp.status, 403, "{method} {target}");
        assert!(body(&resp).contains("another user"), "{}", body(&resp));
    }
    assert_eq!(list(ANN)[0]["title"], "ann's");
}

#[test]
fn anonymous_is_sent_to_log_in() {
    let resp = get("/todo/index", None, false);
    assert_eq!(resp.status, 302);
    assert_eq!(
        resp.header("location"),
        Some("/user/login?next=%2Ftodo%2Findex")
    );
    assert_eq!(get("/todo/index", None, true).status, 401);
    assert_eq!(post("/todo/add", "title=x", None, false).status, 302);
    assert!(model::list::<Todo>().unwrap().is_empty());
}

#[test]
fn bad_input_is_400_with_a_message() {
    post("/todo/add", "title=ok", ANN, false);
    let long = format!("title={}", "x".repeat(TITLE_MAX + 1));
    let update_long = format!("id=1&{long}");
    // (method, target, form, message)
    let table = [
        ("POST", "/todo/add", "title=", "`title` must not be empty"),
        (
            "POST",
            "/todo/add",
            "title=+++",
            "`title` must not be empty",
        ),
        ("POST", "/todo/add", "", "missing field `title`"),
        ("POST", "/todo/add", long.as_str(), "at most 200 characters"),
        (
            "GET",
            "/todo/edit?id=abc",
            "",
            "`id` must be a positive whole number",
        ),
        ("GET", "/todo/edit", "", "missing field `id`"),
        (
            "POST",
            "/todo/update",
            "id=x&title=a",
            "`id` must be a positive whole number",
        ),
        (
            "POST",
            "/todo/update",
            "id=1&title=",
            "`title` must not be empty",
        ),
        (
            "POST",
            "/todo/update",
            update_long.as_str(),
            "at most 200 characters",
        ),
        (
            "POST",
            "/todo/update",
            "id=1&title=a&done=maybe",
            "`done` must be true or false",
        ),
        ("POST", "/todo/delete", "", "missing field `id`"),
        (
            "POST",
            "/todo/delete",
            "id=-3",
            "`id` must be a positive whole number",
        ),
    ];
    for (method, target, form, message) in table {
        for json in [false, true] {
            let resp = if method == "GET" {
                get(target, ANN, json)
            } else {
                post(target, form, ANN, json)
            };
            assert_eq!(resp.status, 400, "{method} {target} {form}");
            assert!(
                body(&resp).contains(message),
                "{method} {target} {form}: {}",
                body(&resp)
            );
            if json {
                let v: Value = serde_json::from_slice(&resp.body).unwrap();
                assert!(v["error"].is_string());
            } else {
                assert!(body(&resp).contains("nav-todo"), "a page in the layout");
            }
        }
    }
    assert_eq!(list(ANN)[0]["title"], "ok");
    assert_eq!(get("/todo/edit?id=99", ANN, false).status, 404);
}

#[test]
fn titles_are_escaped() {
    post(
        "/todo/add",
        "title=%3Cscript%3Ealert(1)%3C%2Fscript%3E",
        ANN,
        false,
    );
    let html = body(&get("/todo/index", ANN, false));
    assert!(!html.contains("<script>alert(1)"), "{html}");
    assert!(html.contains("&lt;script&gt;alert(1)"), "{html}");
    assert_eq!(list(ANN)[0]["title"], "<script>alert(1)</script>");
}

#[test]
fn unknown_routes_and_methods() {
    assert_eq!(get("/todo/nope", ANN, false).status, 404);
    assert_eq!(get("/todo/add", ANN, false).status, 405);
    assert_eq!(get("/todo", None, false).status, 302);
}
