//! Element types of kernel arguments, and how values become the
//! little-endian bytes a kernel reads (and come back).

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

/// The element type of a scalar argument or a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    F32,
    F64,
    I32,
    U32,
    I64,
    U64,
    U8,
}

impl DType {
    pub const ALL: [DType; 7] = [
        DType::F32,
        DType::F64,
        DType::I32,
        DType::U32,
        DType::I64,
        DType::U64,
        DType::U8,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
            DType::I32 => "i32",
            DType::U32 => "u32",
            DType::I64 => "i64",
            DType::U64 => "u64",
            DType::U8 => "u8",
        }
    }

    pub fn parse(name: &str) -> Option<DType> {
        DType::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::U8 => 1,
            DType::F32 | DType::I32 | DType::U32 => 4,
            DType::F64 | DType::I64 | DType::U64 => 8,
        }
    }

    /// Appends `value` (a number, or a string holding one) as this type,
    /// little-endian; an integer type refuses fractions and values out of range.
    pub fn encode(self, value: &Json, out: &mut Vec<u8>) -> Result<(), String> {
        let n = Number::of(value)?;
        let int = |lo: i128, hi: i128| -> Result<i128, String> {
            let i = match n {
                Number::Int(i) => i,
                Number::Float(f) if f.fract() == 0.0 && f.abs() < 1e38 => f as i128,
                Number::Float(f) => {
                    return Err(format!(
                        "{f} is not a whole number, as {} needs",
                        self.name()
                    ))
                }
            };
            if i < lo || i > hi {
                return Err(format!("{i} does not fit in {}", self.name()));
            }
            Ok(i)
        };
        match self {
            DType::F32 => out.extend_from_slice(&(n.as_f64() as f32).to_le_bytes()),
            DType::F64 => out.extend_from_slice(&n.as_f64().to_le_bytes()),
            DType::I32 => out
                .extend_from_slice(&(int(i32::MIN.into(), i32::MAX.into())? as i32).to_le_bytes()),
            DType::U32 => out.extend_from_slice(&(int(0, u32::MAX.into())? as u32).to_le_bytes()),
            DType::I64 => out
                .extend_from_slice(&(int(i64::MIN.into(), i64::MAX.into())? as i64).to_le_bytes()),
            DType::U64 => out.extend_from_slice(&(int(0, u64::MAX.into())? as u64).to_le_bytes()),
            DType::U8 => out.push(int(0, u8::MAX.into())? as u8),
        }
        Ok(())
    }

    /// Reads little-endian elements back as JSON numbers (a float that is
    /// not finite becomes `null`, as JSON has no such number).
    pub fn decode(self, bytes: &[u8]) -> Vec<Json> {
        let chunks = bytes.chunks_exact(self.size());
        let arr = |c: &[u8]| -> [u8; 8] {
            let mut a = [0u8; 8];
            a[..c.len()].copy_from_slice(c);
            a
        };
        chunks
            .map(|c| match self {
                DType::F32 => {
                    let v = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                    serde_json::Number::from_f64(v.into()).map_or(Json::Null, Json::Number)
                }
                DType::F64 => serde_json::Number::from_f64(f64::from_le_bytes(arr(c)))
                    .map_or(Json::Null, Json::Number),
                DType::I32 => i32::from_le_bytes([c[0], c[1], c[2], c[3]]).into(),
                DType::U32 => u32::from_le_bytes([c[0], c[1], c[2], c[3]]).into(),
                DType::I64 => i64::from_le_bytes(arr(c)).into(),
                DType::U64 => u64::from_le_bytes(arr(c)).into(),
                DType::U8 => c[0].into(),
            })
            .collect()
    }
}

#[derive(Debug, Clone, Copy)]
enum Number {
    Int(i128),
    Float(f64),
}

impl Number {
    fn of(v: &Json) -> Result<Number, String> {
        match v {
            Json::Number(n) => Ok(match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => Number::Int(i.into()),
                (_, Some(u)) => Number::Int(u.into()),
                _ => Number::Float(n.as_f64().unwrap_or(f64::NAN)),
            }),
            Json::String(s) => {
                let s = s.trim();
                s.parse::<i128>()
                    .map(Number::Int)
                    .or_else(|_| s.parse::<f64>().map(Number::Float))
                    .map_err(|_| format!("`{s}` is not a number"))
            }
            Json::Bool(b) => Ok(Number::Int((*b).into())),
            other => Err(format!("{other} is not a number")),
        }
    }

    fn as_f64(self) -> f64 {
        match self {
            Number::Int(i) => i as f64,
            Number::Float(f) => f,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scalars_encode_little_endian_and_refuse_what_does_not_fit() {
        let enc = |t: DType, v: Json| {
            let mut b = Vec::new();
            t.encode(&v, &mut b).map(|_| b)
        };
        assert_eq!(enc(DType::F32, json!(2.0)).unwrap(), 2.0f32.to_le_bytes());
        assert_eq!(enc(DType::F64, json!("0.5")).unwrap(), 0.5f64.to_le_bytes());
        assert_eq!(
            enc(DType::U32, json!(65536)).unwrap(),
            65536u32.to_le_bytes()
        );
        assert_eq!(enc(DType::I32, json!(-3)).unwrap(), (-3i32).to_le_bytes());
        assert_eq!(
            enc(DType::U64, json!(u64::MAX)).unwrap(),
            u64::MAX.to_le_bytes()
        );
        assert_eq!(enc(DType::U8, json!("255")).unwrap(), [255]);
        assert_eq!(enc(DType::I64, json!(4.0)).unwrap(), 4i64.to_le_bytes());
        assert!(enc(DType::U8, json!(256))
            .unwrap_err()
            .contains("does not fit in u8"));
        assert!(enc(DType::U32, json!(-1))
            .unwrap_err()
            .contains("does not fit"));
        assert!(enc(DType::I32, json!(1.5))
            .unwrap_err()
            .contains("whole number"));
        assert!(enc(DType::F32, json!("abc"))
            .unwrap_err()
            .contains("not a number"));
        assert!(enc(DType::F32, json!([1])).is_err());
    }
}
