//! A blocking LMTP client (RFC 2033) and a swaks-like message builder, so the
//! intake tests need no external tool. `tests/it/interop.rs` keeps swaks itself
//! as an independent client.

use std::fmt;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// One server reply (possibly multi-line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// Every line without the code and separator, joined by `\n`.
    pub text: String,
}

impl Reply {
    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.text)
    }
}

/// An LMTP (or, for negative tests, any SMTP-like) session over loopback.
pub struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    /// `C: …` / `S: …` lines, for assertion messages.
    pub transcript: String,
}

impl Client {
    /// Connects and reads the greeting.
    pub fn connect(addr: SocketAddr) -> (Client, Reply) {
        let s = TcpStream::connect(addr).expect("connect to the LMTP port");
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        s.set_nodelay(true).unwrap();
        let mut c = Client {
            reader: BufReader::new(s.try_clone().unwrap()),
            writer: s,
            transcript: String::new(),
        };
        let greeting = c.read_reply();
        (c, greeting)
    }

    /// Sends one command line (CRLF added) and reads its reply.
    pub fn command(&mut self, line: &str) -> Reply {
        self.send_line(line);
        self.read_reply()
    }

    fn send_line(&mut self, line: &str) {
        self.transcript.push_str(&format!("C: {line}\n"));
        // A server that already hung up shows up in the next read.
        let _ = self.writer.write_all(format!("{line}\r\n").as_bytes());
    }

    /// Sends a message body after a positive `DATA` reply: CRLF line endings,
    /// dot-stuffing, the final dot.
    pub fn send_data(&mut self, data: &[u8]) {
        let wire = dot_stuff(data);
        self.transcript
            .push_str(&format!("C: <{} bytes of data>\nC: .\n", wire.len()));
        let _ = self.writer.write_all(&wire);
        let _ = self.writer.flush();
    }

    /// Reads one reply; a closed connection reads as code 0.
    pub fn read_reply(&mut self) -> Reply {
        let mut lines = Vec::new();
        let mut code = 0;
        loop {
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) | Err(_) => {
                    self.transcript.push_str("S: <connection closed>\n");
                    return Reply {
                        code: 0,
                        text: lines.join("\n"),
                    };
                }
                Ok(_) => {}
            }
            let line = line.trim_end_matches(['\r', '\n']);
            self.transcript.push_str(&format!("S: {line}\n"));
            code = line.get(..3).and_then(|c| c.parse().ok()).unwrap_or(code);
            lines.push(line.get(4..).unwrap_or("").to_string());
            if line.as_bytes().get(3) != Some(&b'-') {
                return Reply {
                    code,
                    text: lines.join("\n"),
                };
            }
        }
    }
}

/// What one LMTP delivery attempt got back.
#[derive(Debug)]
pub struct Outcome {
    pub greeting: Reply,
    pub lhlo: Option<Reply>,
    pub mail: Option<Reply>,
    /// One reply per `RCPT TO`, in order.
    pub rcpt: Vec<Reply>,
    /// The reply to `DATA` (354 when it went on).
    pub data: Option<Reply>,
    /// After the final dot: one reply per accepted recipient (RFC 2033).
    pub delivery: Vec<Reply>,
    pub transcript: String,
}

impl Outcome {
    /// Every step succeeded and every recipient got a 2xx after the data
    /// (what swaks reports as exit status 0).
    pub fn ok(&self) -> bool {
        self.mail.as_ref().is_some_and(Reply::is_positive)
            && !self.rcpt.is_empty()
            && self.rcpt.iter().all(Reply::is_positive)
            && self.data.as_ref().is_some_and(|r| r.code == 354)
            && self.delivery.len() == self.rcpt.len()
            && self.delivery.iter().all(|r| r.code / 100 == 2)
    }

    /// Every reply of the session, to search for a code or a text.
    pub fn replies(&self) -> impl Iterator<Item = &Reply> {
        std::iter::once(&self.greeting)
            .chain(&self.lhlo)
            .chain(&self.mail)
            .chain(&self.rcpt)
            .chain(&self.data)
            .chain(&self.delivery)
    }
}

/// One LMTP transaction: LHLO, `MAIL FROM:<from>` (empty = null sender),
/// one `RCPT TO` per recipient, `DATA` with `data` (CRLF-normalised and
/// dot-stuffed here), one reply per accepted recipient, QUIT.
pub fn deliver(addr: SocketAddr, from: &str, to: &[&str], data: &[u8]) -> Outcome {
    let (mut c, greeting) = Client::connect(addr);
    let mut out = Outcome {
        greeting,
        lhlo: None,
        mail: None,
        rcpt: Vec::new(),
        data: None,
        delivery: Vec::new(),
        transcript: String::new(),
    };
    let finish = |mut c: Client, mut out: Outcome| {
        let _ = c.command("QUIT");
        out.transcript = c.transcript;
        out
    };
    if out.greeting.code != 220 {
        return finish(c, out);
    }
    let lhlo = c.command("LHLO client.example.org");
    let go_on = lhlo.code == 250;
    out.lhlo = Some(lhlo);
    if !go_on {
        return finish(c, out);
    }
    let mail = c.command(&format!("MAIL FROM:<{from}>"));
    let go_on = mail.code == 250;
    out.mail = Some(mail);
    if !go_on {
        return finish(c, out);
    }
    for rcpt in to {
        out.rcpt.push(c.command(&format!("RCPT TO:<{rcpt}>")));
    }
    let accepted = out.rcpt.iter().filter(|r| r.code / 100 == 2).count();
    if accepted == 0 {
        return finish(c, out);
    }
    let go_ahead = c.command("DATA");
    let go_on = go_ahead.code == 354;
    out.data = Some(go_ahead);
    if !go_on {
        return finish(c, out);
    }
    c.send_data(data);
    for _ in 0..accepted {
        let r = c.read_reply();
        let closed = r.code == 0;
        out.delivery.push(r);
        if closed {
            break;
        }
    }
    finish(c, out)
}

/// CRLF line endings, a leading dot doubled on every line, and the final
/// `.` line.
pub fn dot_stuff(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 16);
    let mut at_line_start = true;
    let mut prev = 0u8;
    for &b in data {
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        at_line_start = b == b'\n';
        prev = b;
    }
    if !at_line_start {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// A message built like swaks builds one: `Date`, `To` (the recipients),
/// `From` (the envelope sender), `Subject: test DATE`, `Message-Id`,
/// `X-Mailer`; `header("Name: value")` replaces a header of that name
/// (swaks `--header` / `--h-Name`) or adds it; `body` is swaks `--body`.
#[derive(Debug, Clone)]
pub struct Mail {
    headers: Vec<(String, String)>,
    body: String,
}

impl Mail {
    pub fn new(from: &str, to: &[&str]) -> Mail {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let date = chrono::Utc::now().to_rfc2822();
        let id = format!(
            "<{}.{}.{}@client.example.org>",
            chrono::Utc::now().format("%Y%m%d%H%M%S"),
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let h = |n: &str, v: String| (n.to_string(), v);
        Mail {
            headers: vec![
                h("Date", date.clone()),
                h("To", to.join(", ")),
                h("From", from.to_string()),
                h("Subject", format!("test {date}")),
                h("Message-Id", id),
                h("X-Mailer", "edesk tests (swaks-like)".into()),
            ],
            body: "This is a test mailing\n".into(),
        }
    }

    /// `"Name: value"`: replaces the first header of that name (case
    /// insensitive), or appends it.
    pub fn header(mut self, line: &str) -> Mail {
        let (name, value) = line.split_once(':').expect("header line `Name: value`");
        let value = value.trim_start().to_string();
        match self
            .headers
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some(h) => h.1 = value,
            None => self.headers.push((name.to_string(), value)),
        }
        self
    }

    pub fn body(mut self, body: &str) -> Mail {
        self.body = body.to_string();
        self
    }

    /// The message with CRLF line endings (not dot-stuffed).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut s = String::new();
        for (n, v) in &self.headers {
            s.push_str(&format!("{n}: {v}\r\n"));
        }
        s.push_str("\r\n");
        s.push_str(&self.body.replace("\r\n", "\n").replace('\n', "\r\n"));
        s.push_str("\r\n");
        s.into_bytes()
    }
}
