//! `edesk chat`: a terminal session with line editing and history
//! (rustyline), and `edesk chat --once "TEXT"` for scripts. With a daemon
//! running it talks to it over the HTTP chat (a session of its own);
//! otherwise it runs the chat service in-process on the data directory.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use super::ChatError;
use super::bots::Platform;
use super::service::{ChatService, Incoming};

/// Where the console's messages go.
pub trait Backend {
    /// Sends one line; returns the replies to print.
    fn send(&mut self, text: &str) -> Result<Vec<String>, ChatError>;
}

/// The chat service in this process (no daemon running).
pub struct Local {
    /// The in-process service.
    pub chat: ChatService,
    /// The chat user: `$USER`, or `local` when unset or odd.
    pub user: String,
}

impl Local {
    /// A console user over `chat`, named after `$USER`.
    pub fn new(chat: ChatService) -> Local {
        let user = std::env::var("USER")
            .ok()
            .filter(|u| !u.is_empty() && u.len() < 64)
            .unwrap_or_else(|| "local".into());
        Local { chat, user }
    }
}

impl Backend for Local {
    fn send(&mut self, text: &str) -> Result<Vec<String>, ChatError> {
        // Team answers that arrived since the last line.
        for d in self.chat.collect_relays(&[Platform::Console])? {
            self.chat.hold_for_user(d);
        }
        let out = self.chat.handle(&Incoming {
            platform: Platform::Console,
            user: self.user.clone(),
            name: self.user.clone(),
            channel: self.user.clone(),
            public: false,
            text: text.to_string(),
            addressed: true,
        })?;
        self.chat.persist()?;
        Ok(out.replies.into_iter().map(|r| r.text).collect())
    }
}

/// A running daemon's HTTP chat.
pub struct Remote {
    /// Where the daemon's HTTP API answers.
    pub addr: SocketAddr,
    /// The web chat session the daemon opened for this console.
    pub session: String,
}

impl Remote {
    /// Connects when a daemon answers `GET /healthz` at `addr`.
    pub fn connect(addr: SocketAddr) -> Option<Remote> {
        let (status, _) = http(addr, "GET", "/healthz", None).ok()?;
        if status != 200 {
            return None;
        }
        let (status, body) = http(addr, "POST", "/v1/chat/session", Some("{}")).ok()?;
        if status != 201 {
            return None;
        }
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        Some(Remote {
            addr,
            session: v.get("session")?.as_str()?.to_string(),
        })
    }
}

impl Backend for Remote {
    fn send(&mut self, text: &str) -> Result<Vec<String>, ChatError> {
        let body = serde_json::json!({ "session": self.session, "text": text }).to_string();
        let (status, body) = http(self.addr, "POST", "/v1/chat", Some(&body))?;
        let v: serde_json::Value = serde_json::from_str(&body)
            .map_err(|e| ChatError::Input(format!("daemon answered {status}: {e}")))?;
        if status != 200 {
            let msg = v.get("error").and_then(|e| e.as_str()).unwrap_or("error");
            return Err(ChatError::Input(format!("daemon answered {status}: {msg}")));
        }
        Ok(v.get("replies")
            .and_then(|r| r.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }
}

/// `GET path` on a running daemon, as JSON; `None` when none answers.
pub fn get_json(addr: SocketAddr, path: &str) -> Option<serde_json::Value> {
    match http(addr, "GET", path, None) {
        Ok((200, body)) => serde_json::from_str(&body).ok(),
        _ => None,
    }
}

/// A small blocking HTTP/1.1 exchange (`Connection: close`).
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Result<(u16, String), ChatError> {
    let io = |e: std::io::Error| ChatError::Input(format!("{method} {path} at {addr}: {e}"));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).map_err(io)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(io)?;
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).map_err(io)?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).map_err(io)?;
    let resp = String::from_utf8_lossy(&resp);
    let (head, rest) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| ChatError::Input(format!("{method} {path}: not an HTTP answer")))?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    Ok((status, body))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// `--once`: one exchange, replies on stdout separated by blank lines.
pub fn once(backend: &mut dyn Backend, text: &str) -> Result<(), ChatError> {
    let replies = backend.send(text)?;
    println!("{}", replies.join("\n\n"));
    Ok(())
}

/// The interactive session: a prompt with line editing and history (kept
/// in `history`), until `quit`, end of input or Ctrl-C.
pub fn interactive(
    backend: &mut dyn Backend,
    history: &Path,
    banner: &str,
) -> Result<(), ChatError> {
    use rustyline::error::ReadlineError;
    let mut editor =
        rustyline::DefaultEditor::new().map_err(|e| ChatError::Input(format!("terminal: {e}")))?;
    let _ = editor.load_history(history);
    println!("{banner}");
    loop {
        match editor.readline("you> ") {
            Ok(line) => {
                let line = line.trim();
                if matches!(line, "quit" | "exit" | "quitter") {
                    break;
                }
                if line.is_empty() {
                    continue;
                }
                let _ = editor.add_history_entry(line);
                match backend.send(line) {
                    Ok(replies) => {
                        for r in replies {
                            println!("edesk> {}\n", r.replace('\n', "\n       "));
                        }
                    }
                    Err(e) => eprintln!("edesk: {e}"),
                }
            }
            Err(ReadlineError::Interrupted | ReadlineError::Eof) => break,
            Err(e) => return Err(ChatError::Input(format!("terminal: {e}"))),
        }
    }
    let _ = editor.save_history(history);
    Ok(())
}
