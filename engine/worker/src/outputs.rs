//! Reading what a step wrote to `$WEFT_OUTPUTS`.

use std::path::Path;

use serde_json::Value as Json;

/// The outputs object, `{}` if the file is missing or empty, or why it cannot be used.
pub fn read(path: &Path, max_bytes: u64) -> Result<Json, String> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(_) => return Ok(Json::Object(Default::default())),
    };
    if meta.len() > max_bytes {
        return Err(format!(
            "outputs file is {} bytes; the limit is {} bytes",
            meta.len(),
            max_bytes
        ));
    }
    let text = std::fs::read(path).map_err(|e| format!("reading outputs file: {e}"))?;
    if text.iter().all(u8::is_ascii_whitespace) {
        return Ok(Json::Object(Default::default()));
    }
    match serde_json::from_slice::<Json>(&text) {
        Ok(v @ Json::Object(_)) => Ok(v),
        Ok(other) => Err(format!(
            "outputs must be a JSON object, got {}",
            kind(&other)
        )),
        Err(e) => Err(format!("outputs file is not valid JSON: {e}")),
    }
}

fn kind(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "a list",
        Json::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_must_be_a_small_json_object() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("o.json");
        assert_eq!(read(&p, 10).unwrap(), serde_json::json!({}));
        std::fs::write(&p, r#"{"a": 1}"#).unwrap();
        assert_eq!(read(&p, 100).unwrap()["a"], 1);
        assert!(read(&p, 3).unwrap_err().contains("limit"));
        std::fs::write(&p, "[1]").unwrap();
        assert!(read(&p, 100).unwrap_err().contains("JSON object"));
        std::fs::write(&p, "{nope").unwrap();
        assert!(read(&p, 100).unwrap_err().contains("not valid JSON"));
    }
}
