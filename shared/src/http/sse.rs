//! What both streaming faces share: waiting for a stream's first event (a failure before
//! any text is an ordinary error response, with its status code) and the events after.

use super::error::ApiError;
use crate::generate::stream::Event;
use futures_util::stream::Stream;
use tokio::sync::mpsc;

/// Waits for the first event after the stream opened (a failure before any text becomes
/// the error response); with it, the parameters the answering candidate dropped, for the
/// `x-gateway-dropped-params` header, which must precede the body.
pub async fn opened(
    rx: &mut mpsc::Receiver<Event>,
) -> Result<(Event, Vec<&'static str>), ApiError> {
    let mut dropped = Vec::new();
    loop {
        match rx.recv().await {
            Some(Event::Opened { dropped: d }) => dropped = d,
            Some(Event::Failed(e)) => return Err(e.into()),
            Some(event) => return Ok((event, dropped)),
            None => return Err(ApiError::internal("stream ended before its first event")),
        }
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
