//! Rendering a [`KernelSpec<Written>`] into the [`KernelSpec`] a worker
//! runs (every template becomes a typed value), and the check of a kernel
//! as it will run, with the rules `weft check` applied to the values the
//! file wrote out.

use super::parse::{count, number, numbers};
use super::{
    check_len, check_names, encode, encode_values, BufferArg, BufferInit, KernelArg, KernelCode,
    KernelSpec, MAX_BLOCK_THREADS,
};
use crate::template::{render_str, Path};
use crate::templated::{no_templates, shown, Written};

type Lookup<'a> = &'a dyn Fn(&Path) -> Result<serde_json::Value, String>;

impl KernelSpec<Written> {
    /// The kernel as it runs: templates rendered, every value checked.
    pub fn render(&self, lookup: Lookup) -> Result<KernelSpec, String> {
        let code = match &self.code {
            KernelCode::Source(s) => KernelCode::Source(render_str(s, lookup)?),
            KernelCode::Ptx(p) => KernelCode::Ptx(render_str(p, lookup)?),
        };
        let args = self
            .args
            .iter()
            .enumerate()
            .map(|(i, a)| a.render(lookup).map_err(|e| format!("argument {i}: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let spec = KernelSpec {
            code,
            entry: render_str(&self.entry, lookup)?,
            grid: self.grid,
            block: self.block,
            shared_mem_bytes: self.shared_mem_bytes,
            args,
        };
        spec.check()?;
        Ok(spec)
    }
}

impl KernelSpec {
    /// Reads a `cuda` table whose values are all written out (no templates).
    pub fn from_json(spec: &serde_json::Value) -> Result<KernelSpec, String> {
        KernelSpec::parse(spec)?.render(&no_templates)
    }

    /// Checks a kernel as it will run (rendered, or changed by a pre hook):
    /// block size, buffer names and sizes, every value against its type.
    pub fn check(&self) -> Result<(), String> {
        let threads: u64 = self.block.iter().map(|d| u64::from(*d)).product();
        if threads > MAX_BLOCK_THREADS || self.block.contains(&0) || self.grid.contains(&0) {
            return Err(format!(
                "`cuda.block` has {threads} threads and grid {:?}; a block has 1 to {MAX_BLOCK_THREADS}, and no dimension is 0",
                self.grid
            ));
        }
        check_names(&self.args)?;
        for (i, arg) in self.args.iter().enumerate() {
            let at = |m: String| format!("argument {i}: {m}");
            match arg {
                KernelArg::Scalar { dtype, value } => {
                    encode(*dtype, value).map_err(|m| at(format!("scalar: {m}")))?;
                }
                KernelArg::Buffer(b) => {
                    let e = |m: String| at(format!("buffer `{}`: {m}", b.name));
                    match &b.init {
                        BufferInit::Len { len, fill } => {
                            check_len(*len, b.dtype).map_err(e)?;
                            if let Some(f) = fill {
                                encode(b.dtype, f).map_err(|m| e(format!("`fill`: {m}")))?;
                            }
                        }
                        BufferInit::Values(values) => {
                            encode_values(values, b.dtype).map_err(e)?;
                        }
                        BufferInit::File(p) if p.is_empty() => {
                            return Err(e("`file` is a path".into()))
                        }
                        BufferInit::File(_) => {}
                    }
                }
            }
        }
        Ok(())
    }
}

/// `what` rendered to `value`, which its reader refused.
fn refused(what: &str, value: &serde_json::Value, why: String) -> String {
    format!("{what} rendered to {}: {why}", shown(value))
}

impl KernelArg<Written> {
    pub(super) fn render(&self, lookup: Lookup) -> Result<KernelArg, String> {
        Ok(match self {
            KernelArg::Scalar { dtype, value } => KernelArg::Scalar {
                dtype: *dtype,
                value: value
                    .render(lookup, |v| {
                        number(&v).map_err(|e| refused("`scalar`", &v, e))
                    })
                    .map_err(|e| format!("scalar: {e}"))?,
            },
            KernelArg::Buffer(b) => {
                let e = |m: String| format!("buffer `{}`: {m}", b.name);
                let init = match &b.init {
                    BufferInit::Len { len, fill } => BufferInit::Len {
                        len: len
                            .render(lookup, |v| count(&v).map_err(|e| refused("`len`", &v, e)))
                            .map_err(e)?,
                        fill: fill
                            .as_ref()
                            .map(|f| {
                                f.render(lookup, |v| {
                                    number(&v).map_err(|e| refused("`fill`", &v, e))
                                })
                            })
                            .transpose()
                            .map_err(e)?,
                    },
                    BufferInit::Values(values) => {
                        BufferInit::Values(values.render(lookup, |v| numbers(&v)).map_err(e)?)
                    }
                    BufferInit::File(p) => BufferInit::File(render_str(p, lookup).map_err(e)?),
                };
                KernelArg::Buffer(BufferArg {
                    name: b.name.clone(),
                    dtype: b.dtype,
                    init,
                    output: b.output,
                })
            }
        })
    }
}
