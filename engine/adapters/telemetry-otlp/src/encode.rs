//! Spans as an OTLP `ExportTraceServiceRequest` in OTLP's JSON encoding:
//! ids as hex, times as decimal strings of nanoseconds, enums as numbers.

use serde_json::{json, Value};
use weft_core::trace::{AttributeValue, SpanRecord, SpanStatus};

/// `SPAN_KIND_INTERNAL`.
const KIND_INTERNAL: u8 = 1;
/// `STATUS_CODE_OK`, `STATUS_CODE_ERROR`.
const STATUS_OK: u8 = 1;
const STATUS_ERROR: u8 = 2;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn nanos(ms: u64) -> String {
    (u128::from(ms) * 1_000_000).to_string()
}

fn attribute(key: &str, value: &AttributeValue) -> Value {
    let value = match value {
        AttributeValue::Text(s) => json!({ "stringValue": s }),
        // OTLP's JSON writes 64-bit integers as strings.
        AttributeValue::Int(n) => json!({ "intValue": n.to_string() }),
    };
    json!({ "key": key, "value": value })
}

fn span(record: &SpanRecord) -> Value {
    let mut span = json!({
        "traceId": hex(&record.trace_id),
        "spanId": hex(&record.span_id),
        "name": record.name,
        "kind": KIND_INTERNAL,
        "startTimeUnixNano": nanos(record.start_ms),
        "endTimeUnixNano": nanos(record.end_ms),
        "attributes": record.attributes.iter().map(|(k, v)| attribute(k, v)).collect::<Vec<_>>(),
        "status": match &record.status {
            SpanStatus::Ok => json!({ "code": STATUS_OK }),
            SpanStatus::Error(message) => json!({ "code": STATUS_ERROR, "message": message }),
        },
    });
    if let Some(parent) = &record.parent_span_id {
        span["parentSpanId"] = json!(hex(parent));
    }
    span
}

/// The request carrying `spans` of service `service`.
pub(crate) fn export_request(service: &str, spans: &[SpanRecord]) -> Value {
    json!({
        "resourceSpans": [{
            "resource": { "attributes": [attribute("service.name", &AttributeValue::Text(service.into()))] },
            "scopeSpans": [{
                "scope": { "name": "weft", "version": env!("CARGO_PKG_VERSION") },
                "spans": spans.iter().map(span).collect::<Vec<_>>(),
            }],
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_span_is_written_as_otlp_json_spells_it() {
        let record = SpanRecord {
            trace_id: [0xab; 16],
            span_id: [1, 2, 3, 4, 5, 6, 7, 8],
            parent_span_id: Some([0xff; 8]),
            name: "step build".into(),
            start_ms: 1_700_000_000_123,
            end_ms: 1_700_000_000_456,
            attributes: vec![("weft.attempt", AttributeValue::Int(2))],
            status: SpanStatus::Error("exited with code 3".into()),
        };
        let request = export_request("weft-worker", &[record]);
        let resource = &request["resourceSpans"][0];
        assert_eq!(
            resource["resource"]["attributes"][0]["value"]["stringValue"],
            "weft-worker"
        );
        let span = &resource["scopeSpans"][0]["spans"][0];
        assert_eq!(span["traceId"], "ab".repeat(16));
        assert_eq!(span["spanId"], "0102030405060708");
        assert_eq!(span["parentSpanId"], "ff".repeat(8));
        assert_eq!(span["startTimeUnixNano"], "1700000000123000000");
        assert_eq!(span["attributes"][0]["value"]["intValue"], "2");
        assert_eq!(span["status"]["code"], 2);
        assert_eq!(span["status"]["message"], "exited with code 3");
    }
}
