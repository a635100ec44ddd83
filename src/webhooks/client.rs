//! The smallest HTTP/1.1 client that delivers a webhook: one POST per
//! connection (`Connection: close`), status line read back, bounded in time
//! and size.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum PostError {
    #[error("webhook URL {0:?} is not a usable http:// URL")]
    BadUrl(String),
    #[error("cannot connect to {addr}: {reason}")]
    Connect { addr: String, reason: String },
    #[error("{addr}: {reason}")]
    Exchange { addr: String, reason: String },
}

/// Checks a webhook URL: `http://host[:port]/path`.
pub fn check_url(url: &str) -> Result<url::Url, PostError> {
    let u = url::Url::parse(url).map_err(|_| PostError::BadUrl(url.to_owned()))?;
    if u.scheme() != "http" || u.host_str().is_none() || !u.username().is_empty() {
        return Err(PostError::BadUrl(url.to_owned()));
    }
    Ok(u)
}

/// POSTs `body` as JSON; the response's status code.
pub async fn post_json(
    url: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> Result<u16, PostError> {
    let u = check_url(url)?;
    let host = u.host_str().unwrap_or_default().to_owned();
    let port = u.port_or_known_default().unwrap_or(80);
    let addr = format!("{host}:{port}");
    let mut path = u.path().to_owned();
    if let Some(q) = u.query() {
        path.push('?');
        path.push_str(q);
    }
    let connect_host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let mut stream = tokio::time::timeout(
        CONNECT_TIMEOUT,
        TcpStream::connect((connect_host.as_str(), port)),
    )
    .await
    .map_err(|_| PostError::Connect {
        addr: addr.clone(),
        reason: "timed out".into(),
    })?
    .map_err(|e| PostError::Connect {
        addr: addr.clone(),
        reason: e.to_string(),
    })?;
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: camgate/{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        env!("CARGO_PKG_VERSION"),
        body.len()
    );
    for (k, v) in headers {
        // Values are ours (event kinds, ids, hex); CR/LF never get in.
        if !v.contains(['\r', '\n']) {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    head.push_str("\r\n");
    let exchange = async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body).await?;
        let mut buf = [0u8; 256];
        let mut got = 0;
        while got < buf.len() {
            let n = stream.read(&mut buf[got..]).await?;
            if n == 0 {
                break;
            }
            got += n;
            if buf[..got].contains(&b'\n') {
                break;
            }
        }
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&buf[..got]).into_owned())
    };
    let first = tokio::time::timeout(RESPONSE_TIMEOUT, exchange)
        .await
        .map_err(|_| PostError::Exchange {
            addr: addr.clone(),
            reason: "no response within 10 s".into(),
        })?
        .map_err(|e| PostError::Exchange {
            addr: addr.clone(),
            reason: e.to_string(),
        })?;
    let line = first.lines().next().unwrap_or("");
    let mut parts = line.split_whitespace();
    match (
        parts.next(),
        parts.next().and_then(|c| c.parse::<u16>().ok()),
    ) {
        (Some(v), Some(code)) if v.starts_with("HTTP/1.") => Ok(code),
        _ => Err(PostError::Exchange {
            addr,
            reason: format!(
                "not an HTTP response: {:?}",
                line.chars().take(80).collect::<String>()
            ),
        }),
    }
}
