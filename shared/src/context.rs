//! The id of the request being served, as a task-local: set by the HTTP layer's
//! middleware, read by anything below it (errors, logs, detached generation tasks)
//! without threading it through every call.

tokio::task_local! {
    pub static REQUEST_ID: String;
}

/// The current request id, if running inside a request.
pub fn request_id() -> Option<String> {
    REQUEST_ID.try_with(|id| id.clone()).ok()
}

/// The current request id, or `-` outside a request (only in unit tests).
pub fn current_request_id() -> String {
    REQUEST_ID
        .try_with(|id| id.clone())
        .unwrap_or_else(|_| "-".to_string())
}
