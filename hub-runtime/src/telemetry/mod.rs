//! Observability: metric handles ([`metrics`]), span names and fields,
//! W3C trace context.

#[cfg(feature = "server")]
pub(crate) mod hub_metrics;

#[cfg(feature = "server")]
/// The short name of a hub type (`ChatHub` for `my_app::hubs::ChatHub`):
/// `rpc.service` on spans.
pub(crate) fn service_name(type_name: &'static str) -> &'static str {
    let without_generics = type_name.split('<').next().unwrap_or(type_name);
    without_generics
        .rsplit("::")
        .next()
        .unwrap_or(without_generics)
}

/// W3C trace context (`traceparent`, `tracestate`) in invocation headers.
#[cfg(feature = "opentelemetry")]
pub(crate) mod trace_context {
    use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    use crate::protocol::messages::Headers;

    struct HeadersExtractor<'a>(&'a Headers);

    impl Extractor for HeadersExtractor<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(key))
                .map(|(_, value)| value.as_str())
        }

        fn keys(&self) -> Vec<&str> {
            self.0.iter().map(|(name, _)| name.as_str()).collect()
        }
    }

    struct HeadersInjector<'a>(&'a mut Headers);

    impl Injector for HeadersInjector<'_> {
        fn set(&mut self, key: &str, value: String) {
            self.0.push((key.to_owned(), value));
        }
    }

    /// Makes the caller's context in `headers`, if any, the parent of
    /// `span` (when the span is recorded).
    pub(crate) fn adopt_parent(span: &tracing::Span, headers: &Headers) {
        if span.is_disabled() || headers.is_empty() {
            return;
        }
        let extractor = HeadersExtractor(headers);
        if extractor.get("traceparent").is_none() {
            return;
        }
        let context = TraceContextPropagator::new().extract(&extractor);
        // Fails only when no OpenTelemetry layer records the span.
        let _ = span.set_parent(context);
    }

    /// The current span's context as invocation headers; empty when no
    /// span is current or it has no valid OpenTelemetry context.
    pub(crate) fn current_headers() -> Headers {
        let mut headers = Headers::new();
        let span = tracing::Span::current();
        if span.is_disabled() {
            return headers;
        }
        let context = span.context();
        TraceContextPropagator::new().inject_context(&context, &mut HeadersInjector(&mut headers));
        headers
    }
}

/// The headers of an outgoing invocation: the current trace context with
/// the `opentelemetry` feature, nothing otherwise.
#[cfg(feature = "client")]
pub(crate) fn invocation_headers() -> crate::protocol::messages::Headers {
    #[cfg(feature = "opentelemetry")]
    {
        trace_context::current_headers()
    }
    #[cfg(not(feature = "opentelemetry"))]
    {
        Vec::new()
    }
}
