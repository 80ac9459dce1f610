//! `logship cat TAG`: reads JSON lines from stdin and sends them over Forward, like
//! `fluent-cat`. Each line that is a JSON object becomes a record; any other JSON value is
//! wrapped as `{"message": value}`. Lines that are not JSON are reported on stderr and
//! skipped (exit code 1 at the end). Lines read together are sent as one PackedForward batch
//! (at most 1000 events), with an ack per batch when `--ack` is given.

use anyhow::Context as _;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

use crate::event::{Event, EventBatch, EventTime};
use crate::forward::client::{encode_record_from_json, ClientConfig, ForwardClient};

/// Options of `logship cat`.
#[derive(Debug, Clone)]
pub struct CatOptions {
    pub tag: String,
    pub addr: String,
    pub shared_key: Option<String>,
    pub ack: bool,
}

const MAX_BATCH: usize = 1000;

/// Sends the JSON lines of `input`; returns how many lines were invalid.
pub async fn cat<R: AsyncRead + Unpin>(opts: &CatOptions, input: R) -> anyhow::Result<usize> {
    let mut client = ForwardClient::connect(ClientConfig {
        addr: opts.addr.clone(),
        shared_key: opts.shared_key.clone(),
        self_hostname: gethostname::gethostname().to_string_lossy().into_owned(),
        require_ack: opts.ack,
        ..Default::default()
    })
    .await
    .with_context(|| format!("cannot connect to {}", opts.addr))?;
    let mut reader = BufReader::new(input);
    let mut line = String::new();
    let mut batch: Vec<Event> = Vec::new();
    let mut invalid = 0usize;
    let mut lineno = 0usize;
    loop {
        line.clear();
        let n = reader.read_line(&mut line).await.context("reading stdin")?;
        if n > 0 {
            lineno += 1;
            let t = line.trim();
            if !t.is_empty() {
                match serde_json::from_str::<serde_json::Value>(t) {
                    Ok(v) => batch.push(Event::new(EventTime::now(), encode_record_from_json(&v))),
                    Err(e) => {
                        invalid += 1;
                        eprintln!("logship cat: line {lineno}: not JSON ({e}); skipped");
                    }
                }
            }
        }
        // Send when the input has nothing more buffered, at EOF, or when the batch is full.
        if !batch.is_empty() && (n == 0 || reader.buffer().is_empty() || batch.len() >= MAX_BATCH) {
            let b = EventBatch::new(opts.tag.as_str(), std::mem::take(&mut batch));
            client.send_batch(&b).await.context("sending events")?;
        }
        if n == 0 {
            break;
        }
    }
    client.close().await.context("closing the connection")?;
    Ok(invalid)
}
