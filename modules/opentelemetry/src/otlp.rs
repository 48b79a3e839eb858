//! OTLP/HTTP JSON encoding of spans: an `ExportTraceServiceRequest` in the protobuf JSON
//! mapping (OTLP spec, "JSON Protobuf Encoding"): ids in lower-case hex, 64-bit integers as
//! strings, enums as numbers.

use serde_json::{Value, json};

use crate::span::{Attr, Span};

/// The instrumentation scope OpenSIPS reports.
pub const SCOPE: &str = "opensips.opentelemetry";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attr(key: &str, v: &Attr) -> Value {
    let value = match v {
        Attr::Str(s) => json!({ "stringValue": s }),
        Attr::Int(i) => json!({ "intValue": i.to_string() }),
    };
    json!({ "key": key, "value": value })
}

fn attrs(list: &[(&'static str, Attr)]) -> Vec<Value> {
    list.iter().map(|(k, v)| attr(k, v)).collect()
}

fn span(s: &Span) -> Value {
    let mut v = json!({
        "traceId": hex(&s.trace_id),
        "spanId": hex(&s.span_id),
        "name": s.name,
        "kind": s.kind as i64,
        "startTimeUnixNano": s.start_ns.to_string(),
        "endTimeUnixNano": s.end_ns.to_string(),
        "attributes": attrs(&s.attrs),
    });
    if let Some(p) = &s.parent {
        v["parentSpanId"] = json!(hex(p));
    }
    if !s.events.is_empty() {
        v["events"] = s
            .events
            .iter()
            .map(|e| {
                json!({
                    "timeUnixNano": e.time_ns.to_string(),
                    "name": e.name,
                    "attributes": attrs(&e.attrs),
                })
            })
            .collect();
    }
    if let Some(msg) = &s.error {
        v["status"] = json!({ "code": 2, "message": msg });
    }
    v
}

/// The request body carrying `spans` of `service` (resource `service.name`, `process.pid`).
pub fn encode(service: &str, spans: &[Span]) -> String {
    let resource = [
        ("service.name", Attr::Str(service.to_owned())),
        ("process.pid", Attr::Int(i64::from(std::process::id()))),
    ];
    json!({
        "resourceSpans": [{
            "resource": { "attributes": attrs(&resource) },
            "scopeSpans": [{
                "scope": { "name": SCOPE, "version": env!("CARGO_PKG_VERSION") },
                "spans": spans.iter().map(span).collect::<Vec<_>>(),
            }],
        }],
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::span::Kind;

    #[test]
    fn protobuf_json_mapping() {
        let s = Span {
            trace_id: [0xab; 16],
            span_id: [1, 2, 3, 4, 5, 6, 7, 8],
            parent: Some([9; 8]),
            name: "INVITE request".into(),
            kind: Kind::Server,
            start_ns: 1_700_000_000_000_000_001,
            end_ns: 1_700_000_000_000_000_002,
            attrs: vec![
                ("sip.cseq", Attr::Str("1 INVITE".into())),
                ("n", Attr::Int(7)),
            ],
            events: vec![],
            error: Some("x".into()),
            message: true,
        };
        let v: Value = serde_json::from_str(&encode("edge", &[s])).unwrap_or_default();
        let rs = &v["resourceSpans"][0];
        assert_eq!(
            rs["resource"]["attributes"][0],
            json!({"key": "service.name", "value": {"stringValue": "edge"}})
        );
        let sp = &rs["scopeSpans"][0]["spans"][0];
        assert_eq!(sp["traceId"], "abababababababababababababababab");
        assert_eq!(sp["spanId"], "0102030405060708");
        assert_eq!(sp["parentSpanId"], "0909090909090909");
        assert_eq!(sp["kind"], 2);
        assert_eq!(sp["startTimeUnixNano"], "1700000000000000001");
        assert_eq!(sp["attributes"][1]["value"]["intValue"], "7");
        assert_eq!(sp["status"]["code"], 2);
        assert!(sp.get("events").is_none());
    }
}
