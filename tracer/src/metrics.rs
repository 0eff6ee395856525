//! `--listen ADDR`: Prometheus scrapes over plain HTTP. The smallest server that
//! does the job: one request per connection, `GET /metrics` answered with the text
//! exposition format, anything else 404. The session renders the body (through
//! `tracer_analysis::report::metrics`) and this module only moves bytes; a slow or
//! stuck scraper costs a task, never the session's loop.
use anyhow::{Context as _, Result};
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// How long a scraper may take to send its request or read the answer.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds `addr` now (a busy or forbidden port is said before tracing), for the
/// runtime to serve later.
pub fn bind(addr: std::net::SocketAddr) -> Result<std::net::TcpListener> {
    let l = std::net::TcpListener::bind(addr)
        .with_context(|| format!("--listen {addr}: cannot listen there"))?;
    l.set_nonblocking(true)?;
    Ok(l)
}

pub struct Server {
    listener: TcpListener,
}

impl Server {
    /// Must run inside the runtime.
    pub fn new(l: std::net::TcpListener) -> Result<Server> {
        Ok(Server {
            listener: TcpListener::from_std(l)?,
        })
    }

    /// The next scraper.
    pub async fn accept(&self) -> Option<TcpStream> {
        self.listener.accept().await.ok().map(|(s, _)| s)
    }
}

/// Answers one connection with `body` (rendered by the caller) on a task of its
/// own.
pub fn answer(mut stream: TcpStream, body: String) {
    tokio::spawn(async move {
        let _ = tokio::time::timeout(IO_TIMEOUT, async move {
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
                let n = stream.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                head.extend_from_slice(&buf[..n]);
            }
            let line = String::from_utf8_lossy(&head);
            let path = line.split_whitespace().nth(1).unwrap_or("");
            let response = if line.starts_with("GET ") && (path == "/metrics" || path == "/") {
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
            } else {
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string()
            };
            stream.write_all(response.as_bytes()).await?;
            stream.shutdown().await
        })
        .await;
    });
}
