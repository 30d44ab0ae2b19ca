//! A small blocking HTTP/1.1 client for the daemon's JSON API on loopback.
//!
//! The command line is synchronous and talks to one local daemon, one
//! request at a time: a `TcpStream` with `Connection: close` is all it
//! needs, so no HTTP client crate (and no async runtime) is pulled in.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde::de::DeserializeOwned;

/// Largest response accepted (an outbox listing of a big queue is large,
/// but not unbounded).
const MAX_RESPONSE_BYTES: u64 = 1 << 30;

/// What can go wrong talking to the daemon.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing answers at the address, or the connection broke.
    #[error("cannot reach the edesk daemon at {addr}: {source}")]
    Connect {
        /// Where the daemon was expected.
        addr: SocketAddr,
        /// The socket error.
        source: std::io::Error,
    },
    /// The answer is not HTTP/1.1 as expected.
    #[error("the daemon at {addr} sent a malformed response: {message}")]
    Malformed {
        /// The daemon's address.
        addr: SocketAddr,
        /// What was wrong.
        message: String,
    },
    /// The daemon answered with an error status; `message` is its `error`.
    #[error("{message}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The `error` of the JSON body (or the raw body).
        message: String,
    },
}

/// A response: status and body bytes (chunked encoding already removed).
#[derive(Debug, Clone)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The API's `{"error": …}` text, else the body as text.
    pub fn error_message(&self) -> String {
        serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&self.body).trim().to_string())
    }
}

/// A client for one daemon address.
#[derive(Debug, Clone)]
pub struct Client {
    addr: SocketAddr,
    timeout: Duration,
}

impl Client {
    /// A client for the daemon listening at `addr`.
    pub fn new(addr: SocketAddr) -> Client {
        Client {
            addr,
            timeout: Duration::from_secs(60),
        }
    }

    /// The daemon's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sends one request; `path` includes the query. Any status is returned.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<Response, ClientError> {
        let connect = |source| ClientError::Connect {
            addr: self.addr,
            source,
        };
        let mut stream =
            TcpStream::connect_timeout(&self.addr, Duration::from_secs(5)).map_err(connect)?;
        stream
            .set_read_timeout(Some(self.timeout))
            .map_err(connect)?;
        stream
            .set_write_timeout(Some(self.timeout))
            .map_err(connect)?;
        let body = body.unwrap_or_default();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAccept: application/json\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.addr,
            body.len()
        );
        stream.write_all(head.as_bytes()).map_err(connect)?;
        stream.write_all(body).map_err(connect)?;
        let mut raw = Vec::new();
        stream
            .take(MAX_RESPONSE_BYTES)
            .read_to_end(&mut raw)
            .map_err(connect)?;
        parse_response(&raw).map_err(|message| ClientError::Malformed {
            addr: self.addr,
            message,
        })
    }

    /// `GET path` and decode the JSON body; an error status is
    /// [`ClientError::Status`] with the daemon's message.
    pub fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let resp = self.request("GET", path, None)?;
        self.decode(resp)
    }

    /// `method path` with a JSON body (or none), decoding the JSON answer.
    pub fn send_json<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<T, ClientError> {
        let bytes = body.map(|b| b.to_string().into_bytes());
        let resp = self.request(method, path, bytes.as_deref())?;
        self.decode(resp)
    }

    fn decode<T: DeserializeOwned>(&self, resp: Response) -> Result<T, ClientError> {
        if !resp.is_success() {
            return Err(ClientError::Status {
                status: resp.status,
                message: resp.error_message(),
            });
        }
        serde_json::from_slice(&resp.body).map_err(|e| ClientError::Malformed {
            addr: self.addr,
            message: format!("body is not the expected JSON: {e}"),
        })
    }
}

/// Splits status line, headers and body; removes chunked encoding.
fn parse_response(raw: &[u8]) -> Result<Response, String> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of headers")?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|_| "headers are not UTF-8")?;
    let body = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|_| status_line.starts_with("HTTP/1."))
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut chunked = false;
    let mut length = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.eq_ignore_ascii_case("chunked");
        } else if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse::<usize>().map_err(|_| "bad content-length")?);
        }
    }
    let body = if chunked {
        dechunk(body)?
    } else {
        match length {
            Some(n) if n > body.len() => return Err("body shorter than content-length".into()),
            Some(n) => body[..n].to_vec(),
            None => body.to_vec(),
        }
    };
    Ok(Response { status, body })
}

fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("truncated chunk size")?;
        let size_text = std::str::from_utf8(&rest[..eol]).map_err(|_| "bad chunk size")?;
        // Chunk extensions (`;name=value`) are allowed and ignored.
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| "bad chunk size")?;
        rest = &rest[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if rest.len() < size + 2 {
            return Err("truncated chunk".into());
        }
        out.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length_body() {
        let r = parse_response(
            b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 17\r\n\r\n{\"error\":\"nope\"}\n",
        )
        .unwrap();
        assert_eq!(r.status, 404);
        assert_eq!(r.error_message(), "nope");
        assert!(!r.is_success());
    }

    #[test]
    fn chunked_body_with_extension() {
        let r = parse_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;x=y\r\n[1,2\r\n2\r\n,3\r\n1\r\n]\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"[1,2,3]");
    }

    #[test]
    fn malformed_responses_are_errors() {
        for bad in [
            &b"garbage"[..],
            b"SMTP 220 hi\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
        ] {
            assert!(
                parse_response(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
