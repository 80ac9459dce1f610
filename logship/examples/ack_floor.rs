//! The floor of "one ack per message" on this machine: a tokio server that does nothing but
//! read what a connection sends and answer `{"ack": chunk}`, with the same runtime as
//! `logship run` (multi-thread, one worker per CPU). No decoding, no pipeline: what it costs
//! per message is the runtime, the socket reads and writes, and the wake-ups — what any
//! server pays for a client that waits for each ack before its next message.
//!
//! For `loadgen --mode message --ack every` traffic only: each read is taken to end with one
//! message whose last 24 bytes are the chunk id (loadgen's fixed layout). Used by
//! `scripts/bench.sh fwd`; not part of the shipped binary.
//!
//!   cargo run --release -p logship --example ack_floor -- [PORT]      (default 24392)

use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CHUNK_ID_LEN: usize = 24;

fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(24392);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async move {
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
            loop {
                let (mut s, _) = listener.accept().await?;
                tokio::spawn(async move {
                    let mut buf = bytes::BytesMut::with_capacity(64 * 1024);
                    let mut ack = Vec::with_capacity(32);
                    while let Ok(n) = s.read_buf(&mut buf).await {
                        if n == 0 || buf.len() < CHUNK_ID_LEN {
                            return;
                        }
                        ack.clear();
                        logship::forward::codec::write_ack(
                            &mut ack,
                            &buf[buf.len() - CHUNK_ID_LEN..],
                        );
                        buf.clear();
                        if s.write_all(&ack).await.is_err() {
                            return;
                        }
                    }
                });
            }
        })
}
