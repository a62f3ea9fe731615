//! A hub inside an existing axum application: REST routes and the hub
//! share one state (a to-do list) — a `POST /api/todos` tells every hub
//! client through the hub's [`HubContext`], and the hub's `List` reads the
//! same list — and the whole router runs under tower layers (CORS,
//! gzip compression, a request timeout) that the hub respects.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use hub_runtime::server::HubServer;
use hub_runtime::{HubContext, hub, hub_client, hub_server};
use serde::{Deserialize, Serialize};
use tower_http::compression::CompressionLayer;
use tower_http::cors::CorsLayer;
use tower_http::timeout::TimeoutLayer;

/// One to-do item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Todo {
    /// Its number, from 1.
    pub id: u64,
    /// What to do.
    pub title: String,
}

/// The body of `POST /api/todos`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewTodo {
    /// What to do.
    pub title: String,
}

/// The application's state, shared by the REST handlers and the hub.
#[derive(Debug, Clone, Default)]
pub struct Todos(Arc<Mutex<Vec<Todo>>>);

impl Todos {
    /// Every item.
    pub fn all(&self) -> Vec<Todo> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Adds an item and answers it.
    pub fn add(&self, title: String) -> Todo {
        let mut todos = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let todo = Todo {
            id: todos.len() as u64 + 1,
            title,
        };
        todos.push(todo.clone());
        todo
    }
}

/// What the hub calls on its clients.
#[hub_client]
pub trait ITodoClient {
    /// Someone added an item (over REST or the hub).
    async fn todo_added(&self, todo: Todo);
}

/// What clients call on the hub.
#[hub_server]
pub trait ITodoHub {
    /// Every item (the same list `GET /api/todos` answers).
    async fn list(&self) -> Vec<Todo>;
}

/// The hub: a view of the application's [`Todos`].
#[derive(Debug)]
pub struct TodoHub {
    todos: Todos,
}

#[hub(client = ITodoClient)]
impl ITodoHub for TodoHub {
    async fn list(&self) -> Vec<Todo> {
        self.todos.all()
    }
}

/// What the REST handlers see: the list and the hub's context.
#[derive(Clone)]
pub struct AppState {
    /// The list.
    pub todos: Todos,
    /// The hub, to tell its clients.
    pub hub: HubContext<TodoHub>,
}

async fn list(State(state): State<AppState>) -> Json<Vec<Todo>> {
    Json(state.todos.all())
}

async fn add(State(state): State<AppState>, Json(new): Json<NewTodo>) -> Json<Todo> {
    let todo = state.todos.add(new.title);
    if let Err(error) = state.hub.clients().all().todo_added(todo.clone()).await {
        tracing::warn!(%error, "cannot tell the hub's clients");
    }
    Json(todo)
}

/// How long a REST request may take. Hub connections are long-lived: the
/// hub is nested *outside* the timeout so that it does not cut them off.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The application: `/api/todos` (GET, POST) under a timeout, the hub at
/// `/hubs/todos`, and CORS and compression around both. Returns the
/// router and the hub (for its shutdown).
pub fn app(todos: Todos) -> (Router, HubServer<TodoHub>) {
    let hub = HubServer::new(TodoHub {
        todos: todos.clone(),
    });
    let state = AppState {
        todos,
        hub: hub.context(),
    };
    let api = Router::new()
        .route("/api/todos", get(list).post(add))
        .with_state(state)
        .layer(TimeoutLayer::with_status_code(
            http::StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ));
    let router = api
        .nest("/hubs/todos", hub.router())
        // A browser page from another origin may call both; the hub's
        // negotiate answers CORS preflights through this layer too.
        .layer(CorsLayer::permissive())
        // Compresses REST answers and negotiate; WebSocket upgrades and
        // event streams pass through untouched.
        .layer(CompressionLayer::new());
    (router, hub)
}
