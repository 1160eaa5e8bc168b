//! What both streaming faces share: waiting for a stream's first event (a failure before
//! any text is an ordinary error response, with its status code) and the events after.

use crate::error::ApiError;
use crate::generate::stream::Event;
use futures_util::stream::Stream;
use tokio::sync::mpsc;

/// Waits for the first event; a failure before any text becomes the error response.
pub async fn first_event(rx: &mut mpsc::Receiver<Event>) -> Result<Event, ApiError> {
    match rx.recv().await {
        Some(Event::Failed(e)) => Err(e.into()),
        Some(event) => Ok(event),
        None => Err(ApiError::internal("stream ended before its first event")),
    }
}

/// The first event, then the rest, as a stream.
pub fn events(first: Event, rx: mpsc::Receiver<Event>) -> impl Stream<Item = Event> + Send {
    futures_util::stream::unfold((Some(first), rx), |(pending, mut rx)| async move {
        match pending {
            Some(event) => Some((event, (None, rx))),
            None => rx.recv().await.map(|event| (event, (None, rx))),
        }
    })
}

/// A stream's error event: the same envelope an error response has, attempts included.
pub fn error_data(e: crate::generate::GenerateError, request_id: &str) -> String {
    ApiError::from(e).envelope(request_id).to_string()
}
