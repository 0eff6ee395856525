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
pub fn answer(stream: TcpStream, body: String) {
    tokio::spawn(async move {
        let _ = tokio::time::timeout(IO_TIMEOUT, async move {
            let mut stream = stream;
            let path = read_request(&mut stream).await?;
            match path.as_deref() {
                Some("/metrics" | "/") => {
                    respond(&mut stream, 200, METRICS_TYPE, body.as_bytes()).await
                }
                _ => respond(&mut stream, 404, "text/plain", b"").await,
            }
        })
        .await;
    });
}

/// The content type of the text exposition prometheus-client writes.
pub const METRICS_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Reads a request's head; the path of a GET, or None for anything else.
pub async fn read_request(stream: &mut TcpStream) -> std::io::Result<Option<String>> {
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
    Ok(line
        .strip_prefix("GET ")
        .and_then(|rest| rest.split_whitespace().next())
        .map(str::to_string))
}

/// Writes a whole response and closes the connection.
pub async fn respond(
    stream: &mut TcpStream,
    status: u16,
    content_type: &str,
    body: &[u8],
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        _ => "Service Unavailable",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    stream.shutdown().await
}

/// Bounds a connection's whole exchange.
pub fn io_timeout() -> Duration {
    IO_TIMEOUT
}
