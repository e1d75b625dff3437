"""Continuing the capturer's trace (docs/redis-schema.md, "Continuing the
trace"). OpenTelemetry is optional: this module imports it only when asked,
and gstcapture_client never depends on it."""

try:
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError:  # the API package is not installed
    TraceContextTextMapPropagator = None

AVAILABLE = TraceContextTextMapPropagator is not None


def extract(carrier, context=None):
    """Returns an OpenTelemetry Context whose current span is the frame's
    capture span (from its traceparent/tracestate), on top of context: start
    the consumer's span with it as parent. A carrier without traceparent
    returns context unchanged (a new trace)."""
    if not AVAILABLE:
        raise ImportError(
            "continuing a frame's trace needs the opentelemetry-api package "
            "(pip install opentelemetry-api); Frame.traceparent and Frame.tracestate "
            "hold the W3C fields without it")
    return TraceContextTextMapPropagator().extract(carrier, context=context)
