//! Masking a step's secrets in what it leaves behind. Each value is looked
//! for as written, line by line when it has several, in base64 (standard
//! and URL-safe, with and without padding) and URL-encoded (as a path or
//! query component, and as a form value), as GitHub Actions and Airflow do.
//! What is found becomes [`MASK`].
//!
//! Not found: a value encoded some other way, or base64 of a longer text
//! the value is only part of. Masking is a net under mistakes, not a
//! sandbox: a step that means to leak a secret it was given can.

use aho_corasick::{AhoCorasick, MatchKind};
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::Value as Json;
use weft_core::secrets::MIN_SECRET_BYTES;

/// What a masked secret reads as.
pub const MASK: &str = "***";

/// A URL component as `encodeURIComponent` and `quote(s, safe='')` write it.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
/// As `quote(s)` writes a path: `/` kept.
const PATH: &AsciiSet = &COMPONENT.remove(b'/');

/// The secrets of one attempt, ready to be masked.
#[derive(Clone)]
pub struct Masker {
    finder: Option<AhoCorasick>,
    longest: usize,
}

impl std::fmt::Debug for Masker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Masker")
            .field("longest", &self.longest)
            .finish_non_exhaustive()
    }
}

impl Masker {
    /// Masks nothing.
    pub fn none() -> Self {
        Self {
            finder: None,
            longest: 0,
        }
    }

    /// Masks `values` and their encodings.
    pub fn new<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let mut forms: Vec<Vec<u8>> = Vec::new();
        for value in values {
            forms.extend(encodings(value));
            let text = String::from_utf8_lossy(value);
            if text.contains('\n') {
                for line in text.lines().map(str::trim) {
                    forms.extend(encodings(line.as_bytes()));
                }
            }
        }
        forms.retain(|f| f.len() >= MIN_SECRET_BYTES);
        forms.sort();
        forms.dedup();
        if forms.is_empty() {
            return Self::none();
        }
        let longest = forms.iter().map(Vec::len).max().unwrap_or(0);
        let finder = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&forms)
            .ok();
        Self { finder, longest }
    }

    /// Whether there is anything to mask.
    pub fn is_empty(&self) -> bool {
        self.finder.is_none()
    }

    /// The longest text looked for: a stream must hold back one byte
    /// fewer than this at the end of a chunk, in case a secret goes on.
    pub fn longest(&self) -> usize {
        self.longest
    }

    pub fn mask_bytes(&self, bytes: &[u8]) -> Vec<u8> {
        match &self.finder {
            Some(f) => {
                let masks = vec![MASK.as_bytes(); f.patterns_len()];
                f.replace_all_bytes(bytes, &masks)
            }
            None => bytes.to_vec(),
        }
    }

    pub fn mask_str(&self, text: &str) -> String {
        match &self.finder {
            Some(f) if f.is_match(text) => {
                // A pattern cut from a binary value may end inside a
                // character: read what is left lossily.
                String::from_utf8_lossy(&self.mask_bytes(text.as_bytes())).into_owned()
            }
            _ => text.to_string(),
        }
    }

    /// Every string of `value`, keys too, masked.
    pub fn mask_json(&self, value: Json) -> Json {
        if self.is_empty() {
            return value;
        }
        match value {
            Json::String(s) => Json::String(self.mask_str(&s)),
            Json::Array(items) => {
                Json::Array(items.into_iter().map(|v| self.mask_json(v)).collect())
            }
            Json::Object(map) => Json::Object(
                map.into_iter()
                    .map(|(k, v)| (self.mask_str(&k), self.mask_json(v)))
                    .collect(),
            ),
            other => other,
        }
    }
}

/// `value` and the forms it takes encoded.
fn encodings(value: &[u8]) -> Vec<Vec<u8>> {
    let mut forms = vec![value.to_vec()];
    for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
        forms.push(engine.encode(value).into_bytes());
    }
    if let Ok(text) = std::str::from_utf8(value) {
        forms.push(
            utf8_percent_encode(text, COMPONENT)
                .to_string()
                .into_bytes(),
        );
        forms.push(utf8_percent_encode(text, PATH).to_string().into_bytes());
        let form = text
            .split(' ')
            .map(|part| utf8_percent_encode(part, COMPONENT).to_string())
            .collect::<Vec<_>>()
            .join("+");
        forms.push(form.into_bytes());
    }
    forms
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const SECRET: &str = "s3cr/t value+&=";

    #[test]
    fn a_value_and_its_encodings_are_masked() {
        let m = Masker::new([SECRET.as_bytes()]);
        let b64 = STANDARD.encode(SECRET);
        let url = utf8_percent_encode(SECRET, COMPONENT).to_string();
        let form = "s3cr%2Ft+value%2B%26%3D";
        let text = format!(
            "raw {SECRET} b64 {b64} url {url} form {form} nopad {} end",
            STANDARD_NO_PAD.encode(SECRET)
        );
        assert_eq!(
            m.mask_str(&text),
            "raw *** b64 *** url *** form *** nopad *** end"
        );
        assert_eq!(m.mask_bytes(b"nothing here"), b"nothing here");
    }

    #[test]
    fn a_multi_line_value_is_masked_whole_and_by_line() {
        let pem = "-----BEGIN KEY-----\nMIIBVwIBADANBgkq\n-----END KEY-----";
        let m = Masker::new([pem.as_bytes()]);
        assert_eq!(m.mask_str(&format!("<{pem}>")), "<***>");
        assert_eq!(m.mask_str("line: MIIBVwIBADANBgkq!"), "line: ***!");
    }

    #[test]
    fn json_strings_and_keys_are_masked() {
        let m = Masker::new([b"hunter2-x".as_slice()]);
        let v = json!({"token": "Bearer hunter2-x", "hunter2-x": [1, "hunter2-x"], "n": 3});
        assert_eq!(
            m.mask_json(v),
            json!({"token": "Bearer ***", "***": [1, "***"], "n": 3})
        );
        assert!(Masker::new(Vec::<&[u8]>::new()).is_empty());
        assert_eq!(Masker::none().mask_str("a"), "a");
    }
}
