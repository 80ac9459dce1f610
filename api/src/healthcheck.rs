//! `api healthcheck`: probe `GET http://127.0.0.1:$PORT/healthz`.
//!
//! Guarantee: returns `Ok` only if a local server answered `/healthz` with
//! status 200 within the timeout; otherwise an error message. It uses a raw
//! tokio TCP connection (HTTP/1.1, `Connection: close`), so the container
//! image needs no curl and the binary no HTTP client.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Default probe timeout (connect + request + response).
pub const TIMEOUT: Duration = Duration::from_secs(2);

/// GET /healthz on 127.0.0.1:`port`; `Ok(())` on 200.
pub async fn check(port: u16, timeout: Duration) -> Result<(), String> {
    let probe = async {
        let mut s = TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| format!("cannot connect to 127.0.0.1:{port}: {e}"))?;
        let req = format!(
            "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: api-healthcheck\r\nConnection: close\r\n\r\n"
        );
        s.write_all(req.as_bytes())
            .await
            .map_err(|e| format!("cannot send the request: {e}"))?;
        let mut buf = Vec::with_capacity(512);
        let mut chunk = [0u8; 512];
        // The status line is all we need.
        while !buf.contains(&b'\n') && buf.len() < 4096 {
            let n = s
                .read(&mut chunk)
                .await
                .map_err(|e| format!("cannot read the response: {e}"))?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let line = String::from_utf8_lossy(&buf);
        let status_line = line.lines().next().unwrap_or("").trim().to_owned();
        match status_line.split_whitespace().nth(1) {
            Some("200") if status_line.starts_with("HTTP/1.") => Ok(()),
            _ if status_line.is_empty() => Err("empty response".to_owned()),
            _ => Err(format!("unhealthy: {status_line}")),
        }
    };
    tokio::time::timeout(timeout, probe)
        .await
        .map_err(|_| format!("no answer from 127.0.0.1:{port} within {timeout:?}"))?
}
