//! The time answers are stamped with: the engine's clock, not the wall
//! clock, so a server on a manual clock (tests) or a host's own clock
//! answers consistently. [`stamp`] runs each request with the engine's
//! `now`; envelopes read it with [`now_ms`]. [`crate::app`] installs it; a
//! host mounting the family routers itself adds it with
//! `axum::middleware::from_fn_with_state(state, rpa_adapters_http::clock::stamp)`.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use rpa_core::Store;

use crate::AppState;

tokio::task_local! {
    static NOW: i64;
}

/// Runs the request with the engine's current time for its envelopes.
pub async fn stamp<S: Store>(State(st): State<AppState<S>>, request: Request, next: Next) -> Response {
    NOW.scope(st.engine.now().0, next.run(request)).await
}

/// Epoch milliseconds for an envelope: the engine's time when the request
/// arrived, or the wall clock outside [`stamp`].
pub fn now_ms() -> i64 {
    NOW.try_with(|now| *now)
        .unwrap_or_else(|_| chrono::Utc::now().timestamp_millis())
}
