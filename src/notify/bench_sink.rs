//! A minimal in-process SMTP sink for `edesk notify bench`: accepts and counts
//! messages, discarding them, so the benchmark measures edesk, not the sink.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// A running sink; it lives until the runtime stops.
pub struct BenchSink {
    /// Where it listens (127.0.0.1, a free port): point `smtp.url` at it.
    pub addr: std::net::SocketAddr,
    /// Messages accepted so far (counted at the end of DATA).
    pub received: Arc<AtomicUsize>,
}

/// Starts a sink on a free local port, serving each connection in its own task.
pub async fn start() -> std::io::Result<BenchSink> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let received = Arc::new(AtomicUsize::new(0));
    let count = received.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                let _ = session(sock, count).await;
            });
        }
    });
    Ok(BenchSink { addr, received })
}

async fn session(sock: tokio::net::TcpStream, count: Arc<AtomicUsize>) -> std::io::Result<()> {
    sock.set_nodelay(true)?;
    let (r, mut w) = sock.into_split();
    let mut r = BufReader::new(r);
    w.write_all(b"220 bench ESMTP\r\n").await?;
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let cmd = line.get(..4).unwrap_or("").to_ascii_uppercase();
        match cmd.as_str() {
            "EHLO" => {
                w.write_all(b"250-bench\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n")
                    .await?
            }
            "DATA" => {
                w.write_all(b"354 go\r\n").await?;
                loop {
                    line.clear();
                    if r.read_line(&mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" || line == ".\n" {
                        break;
                    }
                }
                count.fetch_add(1, Ordering::Relaxed);
                w.write_all(b"250 ok\r\n").await?;
            }
            "QUIT" => {
                w.write_all(b"221 bye\r\n").await?;
                return Ok(());
            }
            _ => w.write_all(b"250 ok\r\n").await?,
        }
    }
}
