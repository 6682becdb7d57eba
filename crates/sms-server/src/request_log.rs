//! The request span (`request{id=… method=… route=…}`) and its request id, with the span's
//! fields formatted only when an event is logged inside it.
//!
//! `tracing-subscriber`'s fmt layer formats a span's fields when the span is created: for every
//! request, whether or not anything is logged (≈ 5,300 instructions per existence check,
//! BENCHMARKS.md "Request path"). Here the span is created with its fields empty and the values
//! kept beside it ([`RequestFields`], in the span's extensions); [`RequestFieldsLayer`] records
//! them into the span just before the first event logged inside it, so the log lines are the
//! same. A subscriber without that layer logs the request's events without these fields.

use std::borrow::Cow;
use std::sync::OnceLock;

use axum::http::{HeaderValue, Method};
use tracing::dispatcher::WeakDispatch;
use tracing::field::{Empty, Value, display};
use tracing::span::Record;
use tracing::{Dispatch, Event, Subscriber};
use tracing_subscriber::Registry;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// A request id: a client's own `x-request-id`, or one made here (`<8 hex digits>-<counter>`,
/// the hex digits drawn per process), kept as numbers until written.
#[derive(Clone, Debug)]
pub enum RequestId {
    Client(HeaderValue),
    Made { prefix: u32, n: u64 },
}

impl RequestId {
    /// The id as the `x-request-id` header value of the answer.
    pub fn header_value(&self) -> Option<HeaderValue> {
        match self {
            RequestId::Client(value) => Some(value.clone()),
            RequestId::Made { prefix, n } => {
                let mut buf = [0u8; MADE_ID_MAX];
                let len = write_made_id(&mut buf, *prefix, *n);
                HeaderValue::from_bytes(&buf[..len]).ok()
            }
        }
    }

    fn text(&self) -> Cow<'_, str> {
        match self {
            RequestId::Client(value) => Cow::Borrowed(value.to_str().unwrap_or("-")),
            RequestId::Made { prefix, n } => {
                let mut buf = [0u8; MADE_ID_MAX];
                let len = write_made_id(&mut buf, *prefix, *n);
                Cow::Owned(String::from_utf8_lossy(&buf[..len]).into_owned())
            }
        }
    }
}

const MADE_ID_MAX: usize = 8 + 1 + 20;

/// `<prefix, 8 hex digits>-<n>` into `buf`, on the stack; answers its length.
fn write_made_id(buf: &mut [u8; MADE_ID_MAX], prefix: u32, n: u64) -> usize {
    let mut rest = &mut buf[..];
    // Always fits: 8 hex digits, the dash and at most 20 decimal digits.
    let _ = std::io::Write::write_fmt(&mut rest, format_args!("{prefix:08x}-{n}"));
    MADE_ID_MAX - rest.len()
}

/// What the request span shows: id, method, route (the route's path pattern, or the path when
/// no route matches). Never a body or another header.
#[derive(Debug)]
pub struct RequestFields {
    pub id: RequestId,
    pub method: Method,
    pub route: Cow<'static, str>,
}

/// The fields of a request span not recorded into it yet.
struct Pending(Option<RequestFields>);

/// A new request span; its fields wait beside it until an event is logged inside it.
pub fn request_span(fields: RequestFields) -> tracing::Span {
    let span = tracing::info_span!("request", id = Empty, method = Empty, route = Empty);
    span.with_subscriber(|(id, dispatch)| {
        if let Some(span) = dispatch
            .downcast_ref::<Registry>()
            .and_then(|registry| registry.span(id))
        {
            span.extensions_mut().insert(Pending(Some(fields)));
        }
    });
    span
}

/// Records a request span's fields into it before the first event logged inside it. It must
/// sit below the fmt layer (`registry().with(filter).with(RequestFieldsLayer::default()).with(fmt)`),
/// which then sees the fields when it formats the event.
#[derive(Default)]
pub struct RequestFieldsLayer {
    dispatch: OnceLock<WeakDispatch>,
}

impl<S> Layer<S> for RequestFieldsLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_register_dispatch(&self, dispatch: &Dispatch) {
        let _ = self.dispatch.set(dispatch.downgrade());
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let Some(scope) = ctx.event_scope(event) else {
            return;
        };
        for span in scope {
            let pending = span
                .extensions_mut()
                .get_mut::<Pending>()
                .and_then(|p| p.0.take());
            if let Some(fields) = pending {
                self.record(&span.id(), span.metadata(), &fields);
            }
        }
    }
}

impl RequestFieldsLayer {
    fn record(
        &self,
        span: &tracing::span::Id,
        metadata: &'static tracing::Metadata<'static>,
        fields: &RequestFields,
    ) {
        let Some(dispatch) = self.dispatch.get().and_then(WeakDispatch::upgrade) else {
            return;
        };
        let set = metadata.fields();
        let (Some(id), Some(method), Some(route)) =
            (set.field("id"), set.field("method"), set.field("route"))
        else {
            return;
        };
        // Displayed, as `%value` fields are: no quotes.
        let id_text = fields.id.text();
        let id_text = display(&*id_text);
        let method_text = display(fields.method.as_str());
        let route_text = display(&*fields.route);
        let values = [
            (&id, Some(&id_text as &dyn Value)),
            (&method, Some(&method_text as &dyn Value)),
            (&route, Some(&route_text as &dyn Value)),
        ];
        let values = set.value_set(&values);
        // Straight to the subscriber: inside an event, `tracing`'s own dispatch refuses to
        // re-enter.
        dispatch.record(span, &Record::new(&values));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::FormattedFields;
    use tracing_subscriber::fmt::format::DefaultFields;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn fields(id: RequestId) -> RequestFields {
        RequestFields {
            id,
            method: Method::HEAD,
            route: Cow::Borrowed("/requesters/{requester}/secrets/{name}"),
        }
    }

    /// Formatted fields of `span` held by the fmt layer (what it prints for the span).
    fn formatted(span: &tracing::Span) -> String {
        let mut text = String::new();
        span.with_subscriber(|(id, dispatch)| {
            let registry = dispatch.downcast_ref::<Registry>().unwrap();
            let span = registry.span(id).unwrap();
            if let Some(f) = span.extensions().get::<FormattedFields<DefaultFields>>() {
                text = f.fields.clone();
            }
        });
        text
    }

    /// Nothing is formatted for a request that logs nothing; the first event inside it prints
    /// the same `request{id=… method=… route=…}` prefix as before, once, and so do later ones.
    #[test]
    fn fields_are_formatted_at_the_first_event_only() {
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::registry()
            .with(RequestFieldsLayer::default())
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(move || writer.clone()),
            );
        tracing::subscriber::with_default(subscriber, || {
            let quiet = request_span(fields(RequestId::Made { prefix: 0xab, n: 7 }));
            assert_eq!(formatted(&quiet), "");
            drop(quiet);

            let span = request_span(fields(RequestId::Made {
                prefix: 0x0123_abcd,
                n: 42,
            }));
            assert_eq!(formatted(&span), "");
            span.in_scope(|| tracing::warn!("first"));
            span.in_scope(|| tracing::warn!("second"));
            assert_eq!(
                formatted(&span),
                "id=0123abcd-42 method=HEAD route=/requesters/{requester}/secrets/{name}"
            );
            let client = request_span(fields(RequestId::Client(HeaderValue::from_static(
                "client-chosen-7",
            ))));
            client.in_scope(|| tracing::info!("third"));
        });
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        let prefix =
            "request{id=0123abcd-42 method=HEAD route=/requesters/{requester}/secrets/{name}}: ";
        assert_eq!(text.matches(prefix).count(), 2, "{text}");
        assert!(text.contains(&format!("{prefix}sms_server::request_log::tests: first")));
        assert!(
            text.contains("request{id=client-chosen-7 method=HEAD"),
            "{text}"
        );
        assert!(!text.contains("000000ab-7"), "{text}");
    }

    #[test]
    fn made_ids_are_hex_prefix_and_counter() {
        let id = RequestId::Made {
            prefix: 0xdead_beef,
            n: u64::MAX,
        };
        assert_eq!(id.header_value().unwrap(), "deadbeef-18446744073709551615");
        assert_eq!(id.text(), "deadbeef-18446744073709551615");
        let first = RequestId::Made { prefix: 0, n: 0 };
        assert_eq!(first.header_value().unwrap(), "00000000-0");
    }
}
