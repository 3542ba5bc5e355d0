//! Reading what a step wrote to `$WEFT_OUTPUTS`, and handing it its inputs.

use std::path::Path;

use serde_json::Value as Json;

/// Largest `$WEFT_INPUTS` put in a step's environment. Linux refuses to
/// start a program with one variable over 128 KiB, and all of them with its
/// arguments over a quarter of its stack limit; a join of thousands of steps
/// passes that. Bigger inputs are only in `$WEFT_INPUTS_FILE`.
pub const MAX_INPUTS_ENV: usize = 64 << 10;

/// What goes in `$WEFT_INPUTS`: the inputs, or, when they are too big for
/// the environment, nothing, with the line the step log says instead.
pub fn inputs_env(inputs: &str) -> Result<&str, String> {
    if inputs.len() <= MAX_INPUTS_ENV {
        return Ok(inputs);
    }
    Err(format!(
        "[weft] $WEFT_INPUTS is not set: the inputs are {} KiB, more than the {} KiB the environment takes; they are in $WEFT_INPUTS_FILE\n",
        inputs.len().div_ceil(1024),
        MAX_INPUTS_ENV >> 10
    ))
}

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

    #[test]
    fn inputs_go_in_the_environment_up_to_the_limit() {
        let fits = "x".repeat(MAX_INPUTS_ENV);
        assert_eq!(inputs_env(&fits), Ok(fits.as_str()));
        let note = inputs_env(&"x".repeat(MAX_INPUTS_ENV + 1)).unwrap_err();
        assert!(
            note.contains("$WEFT_INPUTS is not set") && note.contains("65 KiB"),
            "{note}"
        );
    }
}
