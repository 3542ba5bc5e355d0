//! The pipe between the worker and a kernel process. A frame is a JSON
//! header and the raw bytes of its buffers, so megabytes of floats never
//! pass through JSON:
//!
//! `u32 header length | header | u32 blob count | (u64 length | bytes)*`
//!
//! The kernel process first sends a [`Hello`]; then, for each
//! [`KernelLaunch`] it reads, it answers one [`Reply`].

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use weft_core::kernel::MAX_BUFFER_BYTES;
use weft_core::ports::{BufferData, KernelLaunch, KernelReport, LaunchArg};

use crate::Error;

/// The largest header accepted: JSON, without the buffers.
const MAX_HEADER_BYTES: u32 = 64 << 20;
/// The most buffers one frame may carry.
const MAX_BLOBS: u32 = 4096;

/// The kernel process's first word: its GPU, or why it has none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Hello {
    Ready {
        name: String,
        compute: (i32, i32),
        memory_bytes: u64,
    },
    Unavailable {
        message: String,
    },
}

/// The answer to one launch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Reply {
    Done(KernelReport),
    /// `fatal`: the CUDA context is unusable and the process exits after this.
    Failed {
        message: String,
        fatal: bool,
    },
}

pub(crate) async fn write_frame<W: AsyncWrite + Unpin>(
    w: &mut W,
    header: &impl Serialize,
    blobs: &[Vec<u8>],
) -> Result<(), Error> {
    let header = serde_json::to_vec(header).map_err(|e| Error::Protocol(e.to_string()))?;
    w.write_all(&(header.len() as u32).to_le_bytes()).await?;
    w.write_all(&header).await?;
    w.write_all(&(blobs.len() as u32).to_le_bytes()).await?;
    for blob in blobs {
        w.write_all(&(blob.len() as u64).to_le_bytes()).await?;
        w.write_all(blob).await?;
    }
    w.flush().await?;
    Ok(())
}

/// The next frame, or `None` where the other side closed the pipe between frames.
pub(crate) async fn read_frame<R: AsyncRead + Unpin, T: DeserializeOwned>(
    r: &mut R,
) -> Result<Option<(T, Vec<Vec<u8>>)>, Error> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_le_bytes(len);
    if len > MAX_HEADER_BYTES {
        return Err(Error::Protocol(format!("a header of {len} bytes")));
    }
    let mut header = vec![0u8; len as usize];
    r.read_exact(&mut header).await?;
    let header = serde_json::from_slice(&header).map_err(|e| Error::Protocol(e.to_string()))?;
    let count = r.read_u32_le().await?;
    if count > MAX_BLOBS {
        return Err(Error::Protocol(format!("{count} buffers in one frame")));
    }
    let mut blobs = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let n = r.read_u64_le().await?;
        if n > MAX_BUFFER_BYTES {
            return Err(Error::Protocol(format!("a buffer of {n} bytes")));
        }
        let mut blob = vec![0u8; n as usize];
        r.read_exact(&mut blob).await?;
        blobs.push(blob);
    }
    Ok(Some((header, blobs)))
}

/// Moves the launch's buffer bytes out, in argument order.
pub(crate) fn take_launch_blobs(launch: &mut KernelLaunch) -> Vec<Vec<u8>> {
    launch
        .args
        .iter_mut()
        .filter_map(|a| match a {
            LaunchArg::Buffer {
                data: BufferData::Bytes(b),
                ..
            } => Some(std::mem::take(b)),
            _ => None,
        })
        .collect()
}

/// Puts buffer bytes back where `take_launch_blobs` took them.
pub(crate) fn give_launch_blobs(
    launch: &mut KernelLaunch,
    blobs: Vec<Vec<u8>>,
) -> Result<(), Error> {
    let mut blobs = blobs.into_iter();
    for a in &mut launch.args {
        if let LaunchArg::Buffer {
            data: BufferData::Bytes(b),
            ..
        } = a
        {
            *b = blobs
                .next()
                .ok_or_else(|| Error::Protocol("fewer buffers than arguments".into()))?;
        }
    }
    match blobs.next() {
        None => Ok(()),
        Some(_) => Err(Error::Protocol("more buffers than arguments".into())),
    }
}

/// Moves the output bytes out of a reply, in order.
pub(crate) fn take_reply_blobs(reply: &mut Reply) -> Vec<Vec<u8>> {
    match reply {
        Reply::Done(report) => report
            .outputs
            .iter_mut()
            .map(|o| std::mem::take(&mut o.bytes))
            .collect(),
        Reply::Failed { .. } => Vec::new(),
    }
}

pub(crate) fn give_reply_blobs(reply: &mut Reply, blobs: Vec<Vec<u8>>) -> Result<(), Error> {
    let Reply::Done(report) = reply else {
        return Ok(());
    };
    if blobs.len() != report.outputs.len() {
        return Err(Error::Protocol(format!(
            "{} output buffers for {} outputs",
            blobs.len(),
            report.outputs.len()
        )));
    }
    for (o, b) in report.outputs.iter_mut().zip(blobs) {
        o.bytes = b;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_core::kernel::DType;
    use weft_core::ports::{KernelOutput, LaunchCode};

    fn launch() -> KernelLaunch {
        KernelLaunch {
            code: LaunchCode::Source {
                name: "saxpy.cu".into(),
                text: "extern \"C\" __global__ void saxpy() {}".into(),
            },
            entry: "saxpy".into(),
            grid: [4, 1, 1],
            block: [256, 1, 1],
            shared_mem_bytes: 0,
            args: vec![
                LaunchArg::Scalar {
                    dtype: DType::F32,
                    bytes: 2f32.to_le_bytes().to_vec(),
                },
                LaunchArg::Buffer {
                    name: "x".into(),
                    dtype: DType::F32,
                    data: BufferData::Bytes((0..=255u8).cycle().take(100_000).collect()),
                    output: false,
                },
                LaunchArg::Buffer {
                    name: "y".into(),
                    dtype: DType::F32,
                    data: BufferData::Fill {
                        len: 1 << 20,
                        element: 1f32.to_le_bytes().to_vec(),
                    },
                    output: true,
                },
                LaunchArg::Buffer {
                    name: "empty".into(),
                    dtype: DType::U8,
                    data: BufferData::Bytes(Vec::new()),
                    output: false,
                },
            ],
        }
    }

    #[tokio::test]
    async fn launches_and_replies_cross_the_pipe_intact() {
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        let sent = launch();
        let writer = {
            let mut l = sent.clone();
            tokio::spawn(async move {
                let blobs = take_launch_blobs(&mut l);
                assert_eq!(
                    blobs.len(),
                    2,
                    "the filled buffer travels as its element only"
                );
                write_frame(&mut a, &l, &blobs).await.unwrap();
                let mut reply = Reply::Done(KernelReport {
                    outputs: vec![KernelOutput {
                        name: "y".into(),
                        dtype: DType::F32,
                        bytes: vec![7; 4096],
                    }],
                    compile: "cached".into(),
                    compile_ms: 0.0,
                    kernel_ms: 0.25,
                    total_ms: 1.5,
                    log: String::new(),
                });
                let blobs = take_reply_blobs(&mut reply);
                write_frame(&mut a, &reply, &blobs).await.unwrap();
                // Closing between frames reads as the end, not an error.
            })
        };
        let (mut got, blobs): (KernelLaunch, _) = read_frame(&mut b).await.unwrap().unwrap();
        give_launch_blobs(&mut got, blobs).unwrap();
        assert_eq!(got, sent);
        let (mut reply, blobs): (Reply, _) = read_frame(&mut b).await.unwrap().unwrap();
        give_reply_blobs(&mut reply, blobs).unwrap();
        let Reply::Done(report) = reply else {
            panic!("{reply:?}")
        };
        assert_eq!(report.outputs[0].bytes, vec![7; 4096]);
        writer.await.unwrap();
        assert!(read_frame::<_, Reply>(&mut b).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_pipe_cut_mid_frame_or_a_bad_frame_is_an_error() {
        let mut l = launch();
        let blobs = take_launch_blobs(&mut l);
        let mut bytes = Vec::new();
        write_frame(&mut bytes, &l, &blobs).await.unwrap();
        let cut = &bytes[..bytes.len() - 10];
        assert!(read_frame::<_, KernelLaunch>(&mut &cut[..]).await.is_err());
        let huge = u32::MAX.to_le_bytes();
        let e = read_frame::<_, KernelLaunch>(&mut &huge[..])
            .await
            .unwrap_err();
        assert!(e.to_string().contains("header"), "{e}");
        let mut short = l.clone();
        assert!(give_launch_blobs(&mut short, vec![vec![1]]).is_err());
        assert!(give_launch_blobs(&mut short, vec![vec![1], vec![2], vec![3]]).is_err());
    }
}
