//! The `todo` guest app: each signed-in user's todo list (add, edit, complete, delete), HTML for browsers and JSON for `Accept: application/json`.
//!
//! Records live in the app's storage through [`guest_sdk::model`] (table
//! `todo`). Every route needs a login ([`guard::require_login`]); touching
//! another user's todo is `403` ([`guard::same_user`]).

use guest_sdk::form::{Form, parse_id};
use guest_sdk::model::{self, Model};
use guest_sdk::{Request, Response, Router, User, guard};
use guest_web::{Answer, time};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The longest title, in characters.
pub const TITLE_MAX: usize = 200;

/// A todo as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Todo {
    /// The owner's user id.
    pub user_id: String,
    /// What to do, 1 to [`TITLE_MAX`] characters.
    pub title: String,
    /// Whether it is done.
    pub done: bool,
    /// Unix seconds of creation.
    pub created_at: i64,
    /// Unix seconds of the last change.
    pub updated_at: i64,
}

impl Model for Todo {
    const TABLE: &'static str = "todo";
}

/// The app's routes.
pub fn router() -> Router {
    Router::new()
        .get("/todo", |_: &Request| Response::redirect("/todo/index"))
        .get("/todo/index", wrap(index))
        .post("/todo/add", wrap(add))
        .get("/todo/edit", wrap(edit))
        .post("/todo/update", wrap(update))
        .post("/todo/delete", wrap(delete))
}

guest_web::export_app! {
    router: router,
    templates: [
        ("index.html", include_str!("../templates/index.html")),
        ("edit.html", include_str!("../templates/edit.html")),
    ],
}

/// A todo as template context.
#[derive(Serialize)]
struct View<'a> {
    id: u64,
    title: &'a str,
    done: bool,
    created_at: i64,
    updated_at: i64,
}

/// A todo as template context (borrowed from the record).
fn view(id: u64, todo: &Todo) -> View<'_> {
    View {
        id,
        title: &todo.title,
        done: todo.done,
        created_at: todo.created_at,
        updated_at: todo.updated_at,
    }
}

/// A row of the index page: the times already written out (a filter call
/// per time from the template cost more than the formatting itself).
#[derive(Serialize)]
struct Row<'a> {
    id: u64,
    title: &'a str,
    done: bool,
    created: String,
    updated: String,
}

/// A todo as a row of the index page (borrowed from the record).
fn row(id: u64, todo: &Todo) -> Row<'_> {
    Row {
        id,
        title: &todo.title,
        done: todo.done,
        created: time::human(todo.created_at),
        updated: time::human(todo.updated_at),
    }
}

/// The index page's context: goes into the template as it is, without a
/// `serde_json::Value` built on the way (a page of 50 todos spent a tenth
/// of its time building one).
#[derive(Serialize)]
struct IndexPage<'a> {
    todos: Vec<Row<'a>>,
}

/// A todo for JSON clients: times as RFC 3339.
fn api_view(id: u64, todo: &Todo) -> Value {
    json!({
        "id": id,
        "title": todo.title,
        "done": todo.done,
        "created_at": time::rfc3339(todo.created_at),
        "updated_at": time::rfc3339(todo.updated_at),
    })
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

/// The user's todos, ascending by id.
fn todos_of(req: &Request, user: &User) -> Result<Vec<(u64, Todo)>, Response> {
    model::find_by::<Todo>("user_id", &user.id)
        .map_err(|e| pages().storage_error(req, "listing todos", e))
}

/// The index page's context with the user's todos, as JSON (to add an
/// error and the title typed to it).
fn index_context(req: &Request, user: &User) -> Result<Value, Response> {
    let todos = todos_of(req, user)?;
    Ok(json!(IndexPage {
        todos: todos.iter().map(|(id, t)| row(*id, t)).collect(),
    }))
}

/// Loads todo `id` and checks that it belongs to the signed-in user.
fn owned(req: &Request, id: u64) -> Result<Todo, Response> {
    let todo = model::get::<Todo>(id)
        .map_err(|e| pages().storage_error(req, "reading a todo", e))?
        .ok_or_else(|| pages().error(req, 404, &format!("there is no todo {id}")))?;
    guard::same_user(req, &todo.user_id)?;
    Ok(todo)
}

/// `GET /todo/index`: the signed-in user's todos.
fn index(req: &Request) -> Answer {
    let user = guard::require_login(req)?;
    if req.wants_json() {
        let todos: Vec<Value> = todos_of(req, user)?
            .iter()
            .map(|(id, t)| api_view(*id, t))
            .collect();
        return Ok(Response::json(&todos));
    }
    let todos = todos_of(req, user)?;
    let page = IndexPage {
        todos: todos.iter().map(|(id, t)| row(*id, t)).collect(),
    };
    Ok(pages().render(req, "index.html", page))
}

/// `POST /todo/add` (`title`).
fn add(req: &Request) -> Answer {
    let user = guard::require_login(req)?;
    let form = Form::parse(req);
    let title = match form.text("title", 1, TITLE_MAX) {
        Ok(title) => title,
        Err(err) => {
            let mut ctx = index_context(req, user)?;
            ctx["title"] = json!(form.get("title").unwrap_or_default());
            return Err(invalid(req, &err.0, Some(("index.html", ctx))));
        }
    };
    let now = time::now();
    let todo = Todo {
        user_id: user.id.clone(),
        title,
        done: false,
        created_at: now,
        updated_at: now,
    };
    let id = model::insert(&todo).map_err(|e| pages().storage_error(req, "adding a todo", e))?;
    if req.wants_json() {
        return Ok(Response::json(&api_view(id, &todo)).with_status(201));
    }
    Ok(Response::see_other("/todo/index"))
}

/// `GET /todo/edit?id=N`: the edit form.
fn edit(req: &Request) -> Answer {
    guard::require_login(req)?;
    let id = req
        .query("id")
        .ok_or_else(|| invalid(req, "missing field `id`", None))
        .and_then(|v| parse_id("id", v).map_err(|e| invalid(req, &e.0, None)))?;
    let todo = owned(req, id)?;
    if req.wants_json() {
        return Ok(Response::json(&api_view(id, &todo)));
    }
    Ok(pages().render(req, "edit.html", json!({ "todo": view(id, &todo) })))
}

/// `POST /todo/update` (`id`, `title`, `done`).
fn update(req: &Request) -> Answer {
    guard::require_login(req)?;
    let form = Form::parse(req);
    let id = form.id("id").map_err(|e| invalid(req, &e.0, None))?;
    let mut todo = owned(req, id)?;
    let checked = form
        .text("title", 1, TITLE_MAX)
        .and_then(|title| Ok((title, form.flag("done")?)));
    let (title, done) = match checked {
        Ok(fields) => fields,
        Err(err) => {
            let typed = form.get("title").unwrap_or_default();
            let shown = View {
                title: typed,
                ..view(id, &todo)
            };
            let ctx = json!({ "todo": shown });
            return Err(invalid(req, &err.0, Some(("edit.html", ctx))));
        }
    };
    todo.title = title;
    todo.done = done;
    todo.updated_at = time::now();
    let found =
        model::update(id, &todo).map_err(|e| pages().storage_error(req, "updating a todo", e))?;
    if !found {
        return Err(pages().error(req, 404, &format!("there is no todo {id}")));
    }
    if req.wants_json() {
        return Ok(Response::json(&api_view(id, &todo)));
    }
    Ok(Response::see_other("/todo/index"))
}

/// `POST /todo/delete` (`id`).
fn delete(req: &Request) -> Answer {
    guard::require_login(req)?;
    let form = Form::parse(req);
    let id = form.id("id").map_err(|e| invalid(req, &e.0, None))?;
    owned(req, id)?;
    model::delete::<Todo>(id).map_err(|e| pages().storage_error(req, "deleting a todo", e))?;
    if req.wants_json() {
        return Ok(Response::json(&json!({ "deleted": id })));
    }
    Ok(Response::see_other("/todo/index"))
}

// Natively only: the tests use the SDK's in-memory storage and sessions.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests;
