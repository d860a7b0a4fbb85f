//! The `weibo` guest app: a public microblog with comments; anyone reads, signed-in users post and comment, authors edit and delete.
//!
//! Posts (table `weibo`) and comments (table `comment`) live in the app's
//! storage through [`guest_sdk::model`]. Only a post's author edits or
//! deletes it; a comment can be deleted by its author or by the post's
//! author; anyone else gets `403`. HTML for browsers, JSON for
//! `Accept: application/json`.

use std::collections::BTreeMap;

use guest_sdk::form::{Form, parse_id};
use guest_sdk::model::{self, Model};
use guest_sdk::{Request, Response, Router, User, guard};
use guest_web::{Answer, time};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The longest post or comment, in characters.
pub const CONTENT_MAX: usize = 280;
/// Posts per index page.
pub const PAGE_SIZE: usize = 20;

/// A post as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Weibo {
    /// The author's user id.
    pub user_id: String,
    /// The author's display name when posting.
    pub user_name: String,
    /// The text, 1 to [`CONTENT_MAX`] characters.
    pub content: String,
    /// Unix seconds of creation.
    pub created_at: i64,
    /// Unix seconds of the last edit.
    pub updated_at: i64,
}

impl Model for Weibo {
    const TABLE: &'static str = "weibo";
}

/// A comment as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Comment {
    /// The post it belongs to.
    pub weibo_id: u64,
    /// The commenter's user id.
    pub user_id: String,
    /// The commenter's display name when commenting.
    pub user_name: String,
    /// The text, 1 to [`CONTENT_MAX`] characters.
    pub content: String,
    /// Unix seconds of creation.
    pub created_at: i64,
}

impl Model for Comment {
    const TABLE: &'static str = "comment";
}

/// The app's routes.
pub fn router() -> Router {
    Router::new()
        .get("/weibo", |_: &Request| Response::redirect("/weibo/index"))
        .get("/weibo/index", wrap(index))
        .post("/weibo/add", wrap(add))
        .get("/weibo/edit", wrap(edit))
        .post("/weibo/update", wrap(update))
        .post("/weibo/delete", wrap(delete))
        .post("/weibo/comment/add", wrap(comment_add))
        .post("/weibo/comment/delete", wrap(comment_delete))
}

guest_web::export_app! {
    router: router,
    templates: [
        ("index.html", include_str!("../templates/index.html")),
        ("edit.html", include_str!("../templates/edit.html")),
    ],
}

/// `400` with `message`: JSON, or `page` re-rendered with `ctx` and the error.
fn invalid(req: &Request, message: &str, page: Option<(&str, Value)>) -> Response {
    match page {
        Some((name, mut ctx)) if !req.wants_json() => {
            ctx["error"] = json!(message);
            pages().render(req, name, ctx).with_status(400)
        }
        _ => pages().error(req, 400, message),
    }
}

/// Maps a storage failure to its answer.
fn storage<'a>(
    req: &'a Request,
    what: &'static str,
) -> impl Fn(model::ModelError) -> Response + 'a {
    move |e| pages().storage_error(req, what, e)
}

/// The id in query parameter `name`, or a `400`.
fn query_id(req: &Request, name: &str) -> Result<u64, Response> {
    let value = req
        .query(name)
        .ok_or_else(|| invalid(req, &format!("missing field `{name}`"), None))?;
    parse_id(name, value).map_err(|e| invalid(req, &e.0, None))
}

/// Post `id`, or a `404`.
fn load_post(req: &Request, id: u64) -> Result<Weibo, Response> {
    model::get::<Weibo>(id)
        .map_err(storage(req, "reading a post"))?
        .ok_or_else(|| pages().error(req, 404, &format!("there is no post {id}")))
}

/// A post with its comments, for the index page and JSON clients.
fn post_view(user: Option<&User>, id: u64, post: &Weibo, comments: &[(u64, Comment)]) -> Value {
    let me = user.map(|u| u.id.as_str());
    let comments: Vec<Value> = comments
        .iter()
        .map(|(cid, c)| {
            json!({
                "id": cid,
                "content": c.content,
                "user": c.user_name,
                "created_at": c.created_at,
                "can_delete": me.is_some_and(|me| me == c.user_id || me == post.user_id),
            })
        })
        .collect();
    json!({
        "id": id,
        "content": post.content,
        "user": post.user_name,
        "created_at": post.created_at,
        "updated_at": post.updated_at,
        "mine": me == Some(post.user_id.as_str()),
        "comments": comments,
    })
}

/// Rewrites the times of a [`post_view`] as RFC 3339 for JSON clients.
fn api_view(mut view: Value) -> Value {
    for field in ["created_at", "updated_at"] {
        if let Some(ts) = view[field].as_i64() {
            view[field] = json!(time::rfc3339(ts));
        }
    }
    if let Some(comments) = view["comments"].as_array_mut() {
        for c in comments {
            if let Some(ts) = c["created_at"].as_i64() {
                c["created_at"] = json!(time::rfc3339(ts));
            }
        }
    }
    view
}

/// Page `page` (from 1) of all posts, newest first, with their comments,
/// and whether older posts follow.
fn page_of_posts(req: &Request, page: usize) -> Result<(Vec<Value>, bool), Response> {
    let mut posts = model::list::<Weibo>().map_err(storage(req, "listing posts"))?;
    posts.reverse();
    let start = (page - 1).saturating_mul(PAGE_SIZE);
    let has_more = posts.len() > start.saturating_add(PAGE_SIZE);
    let shown: Vec<(u64, Weibo)> = posts.into_iter().skip(start).take(PAGE_SIZE).collect();
    let mut comments: BTreeMap<u64, Vec<(u64, Comment)>> = BTreeMap::new();
    if !shown.is_empty() {
        for (id, c) in model::list::<Comment>().map_err(storage(req, "listing comments"))? {
            comments.entry(c.weibo_id).or_default().push((id, c));
        }
    }
    let views = shown
        .iter()
        .map(|(id, p)| {
            let list = comments.get(id).map(Vec::as_slice).unwrap_or_default();
            post_view(req.user.as_ref(), *id, p, list)
        })
        .collect();
    Ok((views, has_more))
}

/// The index page's context for `page`.
fn index_context(req: &Request, page: usize) -> Result<Value, Response> {
    let (posts, has_more) = page_of_posts(req, page)?;
    Ok(json!({ "posts": posts, "page": page, "has_more": has_more }))
}

/// `GET /weibo/index?page=N`: everyone's posts, newest first.
fn index(req: &Request) -> Answer {
    let page = match req.query("page") {
        None => 1,
        Some(v) => {
            let page = parse_id("page", v).map_err(|e| invalid(req, &e.0, None))?;
            usize::try_from(page).map_err(|_| invalid(req, "`page` is too large", None))?
        }
    };
    if req.wants_json() {
        let (posts, _) = page_of_posts(req, page)?;
        let posts: Vec<Value> = posts.into_iter().map(api_view).collect();
        return Ok(Response::json(&posts));
    }
    let ctx = index_context(req, page)?;
    Ok(pages().render(req, "index.html", ctx))
}

/// `POST /weibo/add` (`content`).
fn add(req: &Request) -> Answer {
    let user = guard::require_login(req)?;
    let form = Form::parse(req);
    let content = match form.text("content", 1, CONTENT_MAX) {
        Ok(content) => content,
        Err(err) => {
            let mut ctx = index_context(req, 1)?;
            ctx["content"] = json!(form.get("content").unwrap_or_default());
            return Err(invalid(req, &err.0, Some(("index.html", ctx))));
        }
    };
    let now = time::now();
    let post = Weibo {
        user_id: user.id.clone(),
        user_name: user.name.clone(),
        content,
        created_at: now,
        updated_at: now,
    };
    let id = model::insert(&post).map_err(storage(req, "adding a post"))?;
    if req.wants_json() {
        let view = api_view(post_view(Some(user), id, &post, &[]));
        return Ok(Response::json(&view).with_status(201));
    }
    Ok(Response::see_other("/weibo/index"))
}

/// `GET /weibo/edit?id=N`: the edit form, for the author.
fn edit(req: &Request) -> Answer {
    guard::require_login(req)?;
    let id = query_id(req, "id")?;
    let post = load_post(req, id)?;
    guard::same_user(req, &post.user_id)?;
    let view = post_view(req.user.as_ref(), id, &post, &[]);
    if req.wants_json() {
        return Ok(Response::json(&api_view(view)));
    }
    Ok(pages().render(req, "edit.html", json!({ "post": view })))
}

/// `POST /weibo/update` (`id`, `content`), for the author.
fn update(req: &Request) -> Answer {
    guard::require_login(req)?;
    let form = Form::parse(req);
    let id = form.id("id").map_err(|e| invalid(req, &e.0, None))?;
    let mut post = load_post(req, id)?;
    guard::same_user(req, &post.user_id)?;
    let content = match form.text("content", 1, CONTENT_MAX) {
        Ok(content) => content,
        Err(err) => {
            let mut view = post_view(req.user.as_ref(), id, &post, &[]);
            view["content"] = json!(form.get("content").unwrap_or_default());
            let ctx = json!({ "post": view });
            return Err(invalid(req, &err.0, Some(("edit.html", ctx))));
        }
    };
    post.content = content;
    post.updated_at = time::now();
    if !model::update(id, &post).map_err(storage(req, "updating a post"))? {
        return Err(pages().error(req, 404, &format!("there is no post {id}")));
    }
    if req.wants_json() {
        return Ok(Response::json(&api_view(post_view(
            req.user.as_ref(),
            id,
            &post,
            &[],
        ))));
    }
    Ok(Response::see_other("/weibo/index"))
}

/// `POST /weibo/delete` (`id`), for the author; its comments go too.
fn delete(req: &Request) -> Answer {
    guard::require_login(req)?;
    let form = Form::parse(req);
    let id = form.id("id").map_err(|e| invalid(req, &e.0, None))?;
    let post = load_post(req, id)?;
    guard::same_user(req, &post.user_id)?;
    model::delete::<Weibo>(id).map_err(storage(req, "deleting a post"))?;
    let comments =
        model::find_by::<Comment>("weibo_id", id).map_err(storage(req, "finding comments"))?;
    for (cid, _) in comments {
        model::delete::<Comment>(cid).map_err(storage(req, "deleting a comment"))?;
    }
    if req.wants_json() {
        return Ok(Response::json(&json!({ "deleted": id })));
    }
    Ok(Response::see_other("/weibo/index"))
}

/// `POST /weibo/comment/add` (`weibo_id`, `content`).
fn comment_add(req: &Request) -> Answer {
    let user = guard::require_login(req)?;
    let form = Form::parse(req);
    let weibo_id = form.id("weibo_id").map_err(|e| invalid(req, &e.0, None))?;
    let content = form
        .text("content", 1, CONTENT_MAX)
        .map_err(|e| invalid(req, &e.0, None))?;
    load_post(req, weibo_id)?;
    let comment = Comment {
        weibo_id,
        user_id: user.id.clone(),
        user_name: user.name.clone(),
        content,
        created_at: time::now(),
    };
    let id = model::insert(&comment).map_err(storage(req, "adding a comment"))?;
    if req.wants_json() {
        let view = json!({
            "id": id,
            "weibo_id": weibo_id,
            "content": comment.content,
            "user": comment.user_name,
            "created_at": time::rfc3339(comment.created_at),
        });
        return Ok(Response::json(&view).with_status(201));
    }
    Ok(Response::see_other(&format!(
        "/weibo/index#weibo-{weibo_id}"
    )))
}

/// `POST /weibo/comment/delete` (`id`), for the comment's or the post's author.
fn comment_delete(req: &Request) -> Answer {
    let user = guard::require_login(req)?;
    let form = Form::parse(req);
    let id = form.id("id").map_err(|e| invalid(req, &e.0, None))?;
    let comment = model::get::<Comment>(id)
        .map_err(storage(req, "reading a comment"))?
        .ok_or_else(|| pages().error(req, 404, &format!("there is no comment {id}")))?;
    let post_author = model::get::<Weibo>(comment.weibo_id)
        .map_err(storage(req, "reading a post"))?
        .map(|p| p.user_id);
    if user.id != comment.user_id && post_author.as_deref() != Some(user.id.as_str()) {
        return Err(pages().error(
            req,
            403,
            "only the comment's author or the post's author can delete it",
        ));
    }
    model::delete::<Comment>(id).map_err(storage(req, "deleting a comment"))?;
    if req.wants_json() {
        return Ok(Response::json(&json!({ "deleted": id })));
    }
    Ok(Response::see_other(&format!(
        "/weibo/index#weibo-{}",
        comment.weibo_id
    )))
}

// Natively only: the tests use the SDK's in-memory storage and sessions.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests;
