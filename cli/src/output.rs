//! Output: pretty JSON with `--json` (for scripts), readable text otherwise. The text form
//! of node answers is derived from their JSON generically, so it follows the API as it
//! grows: records (`RecordView`) and pages get a compact layout, times are shown in
//! RFC 3339 next to their milliseconds.

use serde::Serialize;
use serde_json::Value;

/// Where and how results are printed.
#[derive(Clone, Copy, Debug)]
pub struct Output {
    /// Print JSON instead of text.
    pub json: bool,
}

impl Output {
    /// Prints `value` as pretty JSON, or the text `human()` returns.
    pub fn show<T: Serialize + ?Sized>(&self, value: &T, human: impl FnOnce() -> String) {
        if self.json {
            println!("{}", to_json(value));
        } else {
            let text = human();
            if text.ends_with('\n') {
                print!("{text}");
            } else {
                println!("{text}");
            }
        }
    }
}

/// Pretty JSON of a value.
pub fn to_json<T: Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

fn is_page(v: &Value) -> bool {
    v.get("records").is_some_and(Value::is_array)
}

fn is_record(v: &Value) -> bool {
    v.get("leaf_index").is_some() && v.get("kind").is_some() && v.get("tx").is_some()
}

fn scalar(key: &str, v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => escape_untrusted(s),
        Value::Number(n) if key.ends_with("_ms") => match n.as_u64() {
            Some(ms) => format!("{ms} ({})", crate::time::format_ms(ms)),
            None => n.to_string(),
        },
        other => other.to_string(),
    }
}

fn is_scalar(v: &Value) -> bool {
    !matches!(v, Value::Object(_) | Value::Array(_))
}

/// Whether a character could repaint or reorder a terminal's text: C0/C1 controls (escape
/// sequences, carriage returns, newlines inside a value) and the Unicode format characters
/// that reorder or hide text (bidirectional overrides and isolates, zero-width marks).
fn is_unsafe_for_terminal(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

/// A string from a node or a record, made safe to print: every character that could act on
/// the terminal is shown as `\u{..}` (Chinese and other printable text is kept as it is).
pub fn escape_untrusted(s: &str) -> String {
    if !s.chars().any(is_unsafe_for_terminal) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_unsafe_for_terminal(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// Text form of any JSON answer. Values are escaped (see [`escape_untrusted`]); keys and
/// anything else from the answer that reaches the text are escaped in a last pass that
/// keeps only the layout's own newlines.
pub fn render(v: &Value) -> String {
    let out = render_raw(v);
    if !out.chars().any(|c| c != '\n' && is_unsafe_for_terminal(c)) {
        return out;
    }
    out.split('\n')
        .map(escape_untrusted)
        .collect::<Vec<_>>()
        .join("\n")
}

fn render_raw(v: &Value) -> String {
    let mut out = String::new();
    if is_page(v) {
        render_page(v, 0, &mut out);
    } else if is_record(v) {
        render_record(v, 0, &mut out);
    } else if is_scalar(v) {
        out.push_str(&scalar("", v));
        out.push('\n');
    } else {
        render_value(v, 0, &mut out);
    }
    out
}

fn render_value(v: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match v {
        Value::Object(map) => {
            for (k, val) in map {
                render_field(k, val, indent, out);
            }
        }
        Value::Array(items) => {
            for item in items {
                render_item(item, indent, out);
            }
        }
        other => {
            out.push_str(&format!("{pad}{}\n", scalar("", other)));
        }
    }
}

fn render_field(k: &str, val: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match val {
        _ if is_scalar(val) => out.push_str(&format!("{pad}{k}: {}\n", scalar(k, val))),
        Value::Array(items) if items.is_empty() => out.push_str(&format!("{pad}{k}: (none)\n")),
        Value::Array(items) if items.iter().all(is_scalar) => {
            let joined: Vec<String> = items.iter().map(|i| scalar(k, i)).collect();
            out.push_str(&format!("{pad}{k}: {}\n", joined.join(", ")));
        }
        _ if is_page(val) => {
            out.push_str(&format!("{pad}{k}:\n"));
            render_page(val, indent + 2, out);
        }
        _ if is_record(val) => {
            out.push_str(&format!("{pad}{k}:\n"));
            render_record(val, indent + 2, out);
        }
        Value::Object(map) if map.len() == 1 && map.values().all(Value::is_object) => {
            // An enum variant with fields, e.g. `{"executed": {"height": 9}}`.
            for (variant, inner) in map {
                out.push_str(&format!("{pad}{k}: {variant}\n"));
                render_value(inner, indent + 2, out);
            }
        }
        _ => {
            out.push_str(&format!("{pad}{k}:\n"));
            render_value(val, indent + 2, out);
        }
    }
}

fn render_item(item: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match item {
        _ if is_scalar(item) => out.push_str(&format!("{pad}- {}\n", scalar("", item))),
        Value::Array(inner) if inner.iter().all(is_scalar) => {
            let joined: Vec<String> = inner.iter().map(|i| scalar("", i)).collect();
            out.push_str(&format!("{pad}- {}\n", joined.join(", ")));
        }
        _ if is_record(item) => render_record(item, indent, out),
        _ => {
            let mut inner = String::new();
            render_value(item, indent + 2, &mut inner);
            // Mark the item's first line with a dash.
            let marked = inner.replacen(&format!("{pad}  "), &format!("{pad}- "), 1);
            out.push_str(&marked);
        }
    }
}

fn render_page(v: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    let records = v
        .get("records")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if records.is_empty() {
        out.push_str(&format!("{pad}(no records)\n"));
    }
    for r in &records {
        render_record(r, indent, out);
    }
    match v.get("next") {
        Some(Value::Number(n)) => out.push_str(&format!(
            "{pad}{} records; more with --after {n}\n",
            records.len()
        )),
        _ => {
            if !records.is_empty() {
                out.push_str(&format!("{pad}{} records (end)\n", records.len()));
            }
        }
    }
}

fn render_record(r: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    let get = |k: &str| {
        r.get(k)
            .map(|v| scalar("", v))
            .unwrap_or_else(|| "-".into())
    };
    let time = r
        .get("block_time_ms")
        .and_then(Value::as_u64)
        .map(crate::time::format_ms)
        .unwrap_or_else(|| "-".into());
    out.push_str(&format!(
        "{pad}[leaf {}] height {}  {time}  {}  by {}\n",
        get("leaf_index"),
        get("height"),
        get("kind"),
        get("department"),
    ));
    out.push_str(&format!("{pad}    id: {}\n", get("id")));
    let tx = r.get("tx").and_then(|t| t.get("tx"));
    if let Some(tx) = tx {
        let signer = tx.get("signer").map(|v| scalar("", v)).unwrap_or_default();
        let nonce = tx.get("nonce").map(|v| scalar("", v)).unwrap_or_default();
        out.push_str(&format!("{pad}    signer: {signer} (nonce {nonce})\n"));
        if let Some(Value::Object(body)) = tx.get("body") {
            for fields in body.values() {
                match fields {
                    Value::Object(_) => render_value(fields, indent + 4, out),
                    other => out.push_str(&format!("{pad}    {}\n", scalar("", other))),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(leaf: u64) -> Value {
        json!({
            "id": "ab".repeat(32), "leaf_index": leaf, "height": 3,
            "block_time_ms": 951_868_800_000u64, "kind": "anchor", "signer": "cd".repeat(32),
            "department": "dept-1",
            "tx": {"tx": {"chain_id": "c", "signer": "cd".repeat(32), "nonce": 4,
                          "created_at_ms": 1, "expires_at_ms": 2,
                          "body": {"anchor": {"document_hash": "ef".repeat(32), "label": "minutes"}}},
                   "signature": "00"}
        })
    }

    #[test]
    fn terminal_escapes_in_values_and_keys_are_shown_escaped() {
        // A label that would clear the screen and print a fake verdict, a key with an
        // escape, a right-to-left override, and Chinese that must stay as it is.
        let v = json!({
            "label": "\u{1b}[2J\u{1b}[HVALID: verified OK\rX\nY",
            "ke\u{1b}[31my": "v",
            "note": "abc\u{202e}fed",
            "名称": "不动产登记",
        });
        let text = render(&v);
        assert!(!text.contains('\u{1b}'), "{text:?}");
        assert!(!text.contains('\r'), "{text:?}");
        assert!(!text.contains('\u{202e}'), "{text:?}");
        assert!(text.contains("\\u{1b}[2J"), "{text}");
        assert!(text.contains("\\u{d}X\\u{a}Y"), "{text}");
        assert!(text.contains("名称: 不动产登记"), "{text}");
        // One line per field: the newline inside the label did not start a line.
        assert_eq!(text.lines().count(), 4, "{text}");
        let mut r = record(1);
        r["tx"]["tx"]["body"]["anchor"]["label"] = json!("\u{1b}]0;owned\u{7}");
        assert!(!render(&r).contains('\u{1b}'));
    }

    #[test]
    fn pages_show_records_and_the_cursor() {
        let page = json!({"records": [record(7), record(8)], "next": 8});
        let text = render(&page);
        assert!(text.contains("[leaf 7] height 3  2000-03-01T00:00:00.000Z  anchor  by dept-1"));
        assert!(text.contains("label: minutes"), "{text}");
        assert!(text.contains("more with --after 8"), "{text}");
        let end = render(&json!({"records": [], "next": null}));
        assert!(end.contains("(no records)"));
    }

    #[test]
    fn objects_render_fields_times_and_nested_pages() {
        let v = json!({
            "parcel": {"parcel_id": "P-1", "owner": "alice", "encumbrances": [],
                       "registered_at_ms": 0, "status": {"executed": {"height": 9}},
                       "votes": [["dept-1", true]]},
            "history": {"records": [record(1)], "next": null}
        });
        let text = render(&v);
        // serde_json maps are sorted by key.
        assert!(text.contains("parcel:\n  encumbrances: (none)"), "{text}");
        assert!(text.contains("\n  parcel_id: P-1\n"), "{text}");
        assert!(text.contains("registered_at_ms: 0 (1970-01-01T00:00:00.000Z)"));
        assert!(text.contains("status: executed\n    height: 9"), "{text}");
        assert!(text.contains("- dept-1, true"), "{text}");
        assert!(text.contains("history:\n  [leaf 1]"), "{text}");
    }
}
