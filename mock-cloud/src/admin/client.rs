//! A small HTTP/1.1 client for the admin API (loopback, plain HTTP, `Connection: close`), used
//! by the CLI's client subcommands and handy in scripts and tests.

use std::net::SocketAddr;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;

use crate::Error;

/// Talks to a running mock cloud's admin API.
#[derive(Debug, Clone)]
pub struct AdminClient {
    addr: SocketAddr,
}

fn admin_err(e: impl std::fmt::Display) -> Error {
    Error::Admin(e.to_string())
}

impl AdminClient {
    /// A client for `http://HOST:PORT` (or a bare `HOST:PORT`).
    pub fn new(url: &str) -> Result<Self, Error> {
        let hostport = url.trim_start_matches("http://").trim_end_matches('/');
        let addr = hostport
            .parse()
            .map_err(|_| Error::Admin(format!("admin URL must be http://IP:PORT, got {url}")))?;
        Ok(Self { addr })
    }

    /// A client for an address.
    pub fn for_addr(addr: SocketAddr) -> Self {
        Self { addr }
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<BufReader<TcpStream>, Error> {
        let stream = TcpStream::connect(self.addr)
            .await
            .map_err(|e| Error::Admin(format!("cannot reach {}: {e}", self.addr)))?;
        let body = body.map(Value::to_string).unwrap_or_default();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.addr,
            body.len()
        );
        let mut stream = BufReader::new(stream);
        stream
            .get_mut()
            .write_all(head.as_bytes())
            .await
            .map_err(admin_err)?;
        stream
            .get_mut()
            .write_all(body.as_bytes())
            .await
            .map_err(admin_err)?;
        Ok(stream)
    }

    /// Sends a request and returns the JSON answer; non-2xx answers become [`Error::Admin`].
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, Error> {
        let mut stream = self.send(method, path, body).await?;
        let (status, chunked) = read_head(&mut stream).await?;
        let mut raw = Vec::new();
        if chunked {
            while let Some(chunk) = read_chunk(&mut stream).await? {
                raw.extend_from_slice(&chunk);
            }
        } else {
            stream.read_to_end(&mut raw).await.map_err(admin_err)?;
        }
        let value: Value = if raw.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&raw)?
        };
        if (200..300).contains(&status) {
            Ok(value)
        } else {
            let msg = value
                .get("error")
                .and_then(Value::as_str)
                .map_or_else(|| value.to_string(), str::to_owned);
            Err(Error::Admin(format!("HTTP {status}: {msg}")))
        }
    }

    /// Streams a JSON-lines answer, calling `on_line` per line until it returns `false` or the
    /// stream ends.
    pub async fn stream(
        &self,
        path: &str,
        mut on_line: impl FnMut(&str) -> bool,
    ) -> Result<(), Error> {
        let mut stream = self.send("GET", path, None).await?;
        let (status, chunked) = read_head(&mut stream).await?;
        if !(200..300).contains(&status) {
            return Err(Error::Admin(format!("HTTP {status}")));
        }
        let mut pending = Vec::new();
        loop {
            let chunk = if chunked {
                read_chunk(&mut stream).await?
            } else {
                let mut buf = vec![0; 8192];
                let n = stream.read(&mut buf).await.map_err(admin_err)?;
                buf.truncate(n);
                (n > 0).then_some(buf)
            };
            let Some(chunk) = chunk else { return Ok(()) };
            pending.extend_from_slice(&chunk);
            while let Some(i) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=i).collect();
                let text = String::from_utf8_lossy(&line);
                if !on_line(text.trim_end()) {
                    return Ok(());
                }
            }
        }
    }
}

/// Reads the status line and headers; returns the status and whether the body is chunked.
async fn read_head(stream: &mut BufReader<TcpStream>) -> Result<(u16, bool), Error> {
    let mut line = String::new();
    stream.read_line(&mut line).await.map_err(admin_err)?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Error::Admin(format!("bad status line {line:?}")))?;
    let mut chunked = false;
    loop {
        line.clear();
        if stream.read_line(&mut line).await.map_err(admin_err)? == 0 || line.trim().is_empty() {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
            chunked = true;
        }
    }
    Ok((status, chunked))
}

/// One chunk of a chunked body; `None` at the end.
async fn read_chunk(stream: &mut BufReader<TcpStream>) -> Result<Option<Vec<u8>>, Error> {
    let mut line = String::new();
    if stream.read_line(&mut line).await.map_err(admin_err)? == 0 {
        return Ok(None);
    }
    let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
        .map_err(|_| Error::Admin(format!("bad chunk size {line:?}")))?;
    if size == 0 {
        return Ok(None);
    }
    let mut buf = vec![0; size + 2];
    stream.read_exact(&mut buf).await.map_err(admin_err)?;
    buf.truncate(size);
    Ok(Some(buf))
}
