//! Unit tests of the weibo app against the SDK's native storage stand-in.

use super::*;

type Who = Option<(&'static str, &'static str)>;

const ANN: Who = Some(("1", "ann"));
const BOB: Who = Some(("2", "bob"));
const CY: Who = Some(("3", "cy"));

fn body(resp: &Response) -> String {
    String::from_utf8_lossy(&resp.body).into_owned()
}

fn request(method: &str, target: &str, form: &str, who: Who, json: bool) -> Request {
    let mut req = Request::new(method, target)
        .with_header("Content-Type", "application/x-www-form-urlencoded")
        .with_body(form);
    if let Some((id, name)) = who {
        req = req.with_user(id, name);
    }
    if json {
        req = req.with_header("Accept", "application/json");
    }
    req
}

fn get(target: &str, who: Who, json: bool) -> Response {
    handle(request("GET", target, "", who, json))
}

fn post(target: &str, form: &str, who: Who) -> Response {
    handle(request("POST", target, form, who, false))
}

fn posts(target: &str) -> Vec<Value> {
    let resp = get(target, None, true);
    assert_eq!(resp.status, 200, "{}", body(&resp));
    serde_json::from_slice(&resp.body).unwrap()
}

#[test]
fn post_comment_edit_delete() {
    assert_eq!(post("/weibo/add", "content=hello+world", ANN).status, 303);
    assert_eq!(post("/weibo/add", "content=second", BOB).status, 303);
    let list = posts("/weibo/index");
    assert_eq!(list.len(), 2);
    assert_eq!(
        (list[0]["id"].as_u64(), list[0]["user"].as_str()),
        (Some(2), Some("bob"))
    );
    assert_eq!(list[1]["content"], "hello world");
    assert!(list[1]["created_at"].as_str().unwrap().ends_with('Z'));

    let resp = post("/weibo/comment/add", "weibo_id=1&content=nice", BOB);
    assert_eq!(resp.status, 303);
    assert_eq!(resp.header("location"), Some("/weibo/index#weibo-1"));
    let list = posts("/weibo/index");
    assert_eq!(list[1]["comments"][0]["content"], "nice");
    assert_eq!(list[1]["comments"][0]["user"], "bob");
    assert_eq!(list[1]["comments"][0]["id"], 1);

    // Reading needs no login, and shows the comment form only to users.
    let page = body(&get("/weibo/index", None, false));
    assert!(
        page.contains("hello world") && page.contains("nice"),
        "{page}"
    );
    assert!(!page.contains("comment-form"));
    assert!(body(&get("/weibo/index", CY, false)).contains("comment-form"));

    assert_eq!(get("/weibo/edit?id=1", ANN, false).status, 200);
    assert_eq!(
        post("/weibo/update", "id=1&content=edited", ANN).status,
        303
    );
    assert_eq!(posts("/weibo/index")[1]["content"], "edited");

    assert_eq!(post("/weibo/delete", "id=1", ANN).status, 303);
    let list = posts("/weibo/index");
    assert_eq!(list.len(), 1);
    assert!(
        model::list::<Comment>().unwrap().is_empty(),
        "comments go with the post"
    );
}

#[test]
fn permissions() {
    post("/weibo/add", "content=ann%27s", ANN);
    post("/weibo/comment/add", "weibo_id=1&content=by+bob", BOB);
    post("/weibo/comment/add", "weibo_id=1&content=by+cy", CY);
    post("/weibo/comment/add", "weibo_id=1&content=by+cy+2", CY);
    // Others cannot edit or delete the post.
    assert_eq!(get("/weibo/edit?id=1", BOB, false).status, 403);
    assert_eq!(post("/weibo/update", "id=1&content=x", BOB).status, 403);
    assert_eq!(post("/weibo/delete", "id=1", BOB).status, 403);
    // bob cannot delete cy's comment; cy can; ann (the post's author) can.
    assert_eq!(post("/weibo/comment/delete", "id=3", BOB).status, 403);
    assert_eq!(post("/weibo/comment/delete", "id=2", CY).status, 303);
    assert_eq!(post("/weibo/comment/delete", "id=1", ANN).status, 303);
    let list = posts("/weibo/index");
    assert_eq!(list[0]["content"], "ann's");
    assert_eq!(list[0]["comments"].as_array().unwrap().len(), 1);
    assert_eq!(list[0]["comments"][0]["content"], "by cy 2");
    // Delete buttons follow the same rule.
    let page = body(&get("/weibo/index", BOB, false));
    assert!(!page.contains("/weibo/comment/delete") && !page.contains("/weibo/edit"));
    let page = body(&get("/weibo/index", ANN, false));
    assert!(page.contains("/weibo/comment/delete") && page.contains("/weibo/edit?id=1"));
    // Anonymous mutations are sent to log in (401 for JSON).
    for (target, form) in [
        ("/weibo/add", "content=x"),
        ("/weibo/update", "id=1&content=x"),
        ("/weibo/delete", "id=1"),
        ("/weibo/comment/add", "weibo_id=1&content=x"),
        ("/weibo/comment/delete", "id=3"),
    ] {
        assert_eq!(post(target, form, None).status, 302, "{target}");
        let resp = handle(request("POST", target, form, None, true));
        assert_eq!(resp.status, 401, "{target}");
    }
    assert_eq!(get("/weibo/edit?id=1", None, false).status, 302);
    assert_eq!(posts("/weibo/index").len(), 1);
}

#[test]
fn pagination_newest_first() {
    for i in 1..=45 {
        post("/weibo/add", &format!("content=post+{i}"), ANN);
    }
    let first = posts("/weibo/index");
    assert_eq!(first.len(), PAGE_SIZE);
    assert_eq!(first[0]["content"], "post 45");
    assert_eq!(posts("/weibo/index?page=2")[0]["content"], "post 25");
    let third = posts("/weibo/index?page=3");
    assert_eq!(third.len(), 5);
    assert_eq!(third[4]["content"], "post 1");
    assert!(posts("/weibo/index?page=9").is_empty());
    let html = body(&get("/weibo/index?page=2", None, false));
    assert!(html.contains("page=1") && html.contains("page=3"), "{html}");
}

#[test]
fn content_is_escaped() {
    post(
        "/weibo/add",
        "content=%3Cscript%3Ealert(1)%3C%2Fscript%3E",
        ANN,
    );
    post(
        "/weibo/comment/add",
        "weibo_id=1&content=%3Cimg+src%3Dx+onerror%3Dalert(1)%3E",
        BOB,
    );
    let html = body(&get("/weibo/index", None, false));
    assert!(!html.contains("<script>alert(1)"), "{html}");
    assert!(!html.contains("<img src"), "{html}");
    assert!(html.contains("&lt;script&gt;alert(1)"), "{html}");
    assert_eq!(
        posts("/weibo/index")[0]["content"],
        "<script>alert(1)</script>"
    );
}

#[test]
fn bad_input_is_400_or_404() {
    post("/weibo/add", "content=ok", ANN);
    let long = format!("content={}", "é".repeat(CONTENT_MAX + 1));
    let update_long = format!("id=1&{long}");
    // (method, target, form, status, message)
    let table = [
        (
            "POST",
            "/weibo/add",
            "content=",
            400,
            "`content` must not be empty",
        ),
        ("POST", "/weibo/add", "", 400, "missing field `content`"),
        (
            "POST",
            "/weibo/add",
            long.as_str(),
            400,
            "at most 280 characters",
        ),
        (
            "POST",
            "/weibo/update",
            update_long.as_str(),
            400,
            "at most 280 characters",
        ),
        (
            "POST",
            "/weibo/update",
            "id=one&content=x",
            400,
            "`id` must be a positive whole number",
        ),
        ("POST", "/weibo/delete", "", 400, "missing field `id`"),
        (
            "POST",
            "/weibo/comment/add",
            "weibo_id=1",
            400,
            "missing field `content`",
        ),
        (
            "POST",
            "/weibo/comment/add",
            "weibo_id=x&content=a",
            400,
            "`weibo_id` must be",
        ),
        (
            "POST",
            "/weibo/comment/add",
            "weibo_id=9&content=a",
            404,
            "there is no post 9",
        ),
        (
            "POST",
            "/weibo/comment/delete",
            "id=9",
            404,
            "there is no comment 9",
        ),
        (
            "POST",
            "/weibo/update",
            "id=9&content=a",
            404,
            "there is no post 9",
        ),
        (
            "GET",
            "/weibo/edit?id=x",
            "",
            400,
            "`id` must be a positive whole number",
        ),
        ("GET", "/weibo/edit", "", 400, "missing field `id`"),
        (
            "GET",
            "/weibo/index?page=0",
            "",
            400,
            "`page` must be a positive whole number",
        ),
        (
            "GET",
            "/weibo/index?page=abc",
            "",
            400,
            "`page` must be a positive whole number",
        ),
    ];
    for (method, target, form, status, message) in table {
        for json in [false, true] {
            let resp = handle(request(method, target, form, ANN, json));
            assert_eq!(resp.status, status, "{method} {target} {form}");
            assert!(
                body(&resp).contains(message),
                "{method} {target}: {}",
                body(&resp)
            );
        }
    }
    assert_eq!(posts("/weibo/index").len(), 1);
}
