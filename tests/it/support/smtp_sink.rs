//! An SMTP sink in Rust (std threads on 127.0.0.1:0) with the behaviour of
//! `tests/it/support/smtp_sink.py` (aiosmtpd), which `tests/it/interop.rs` keeps
//! as an independent server:
//! - each accepted message is written to `DIR/<n>.eml` (n = 1, 2, … in
//!   arrival order, via `.<n>.tmp` and a rename), prefixed with
//!   `X-Sink-Mail-From: <reverse-path>` and `X-Sink-Rcpt-To: <a>,<b>` lines;
//! - `RCPT` answers 451 for local parts starting with `tempfail`, 550 for
//!   `reject`, 250 otherwise;
//! - replies and command rules follow aiosmtpd 1.4 (`503 Error: need RCPT
//!   command`, nested MAIL refused, dot-unstuffing, `.\r\n` ends the data).

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

const HOST: &str = "127.0.0.1";
/// aiosmtpd's default `data_size_limit` (32 MiB), announced as SIZE.
const SIZE_LIMIT: usize = 33_554_432;

/// The SMTP sink, stopped on drop.
pub struct Sink {
    pub port: u16,
    pub dir: PathBuf,
    stop: Arc<AtomicBool>,
}

impl Sink {
    pub fn start(dir: &Path) -> Sink {
        std::fs::create_dir_all(dir).unwrap();
        let listener = TcpListener::bind((HOST, 0)).expect("bind the SMTP sink");
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let counter = Arc::new(AtomicU64::new(1));
        {
            let (stop, dir) = (stop.clone(), dir.to_path_buf());
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(conn) = conn else { continue };
                    let (dir, counter) = (dir.clone(), counter.clone());
                    std::thread::spawn(move || {
                        let _ = session(conn, &dir, &counter);
                    });
                }
            });
        }
        Sink {
            port,
            dir: dir.to_path_buf(),
            stop,
        }
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Raw messages received so far, in arrival order.
    pub fn messages(&self) -> Vec<Vec<u8>> {
        messages_in(&self.dir)
    }
}

/// The messages a sink wrote to `dir` (`<n>.eml`), in arrival order; the
/// Python sink of the interop tests writes the same files.
pub fn messages_in(dir: &Path) -> Vec<Vec<u8>> {
    let mut files: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let p = e.ok()?.path();
            let n = p
                .file_name()?
                .to_str()?
                .strip_suffix(".eml")?
                .parse()
                .ok()?;
            Some((n, p))
        })
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|(_, p)| std::fs::read(p).unwrap())
        .collect()
}

/// A header of a raw message as the sink stored it (trimmed).
pub fn header(raw: &[u8], name: &str) -> Option<String> {
    let m = mail_parser::MessageParser::default().parse(raw)?;
    m.header_raw(name).map(|v| v.trim().to_string())
}

/// The envelope recipients the sink recorded (`X-Sink-Rcpt-To`).
pub fn rcpt_to(raw: &[u8]) -> String {
    header(raw, "X-Sink-Rcpt-To").unwrap_or_default()
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect((HOST, self.port));
    }
}

#[derive(Default)]
struct Envelope {
    mail_from: Option<String>,
    rcpt_tos: Vec<String>,
}

/// `<addr>` or a bare address, then optional ESMTP parameters.
fn parse_path(arg: &str) -> Option<String> {
    let arg = arg.trim();
    if let Some(rest) = arg.strip_prefix('<') {
        let end = rest.find('>')?;
        Some(rest[..end].to_string())
    } else {
        arg.split_whitespace().next().map(str::to_string)
    }
}

fn reply(w: &mut TcpStream, s: &str) -> std::io::Result<()> {
    w.write_all(format!("{s}\r\n").as_bytes())
}

fn session(conn: TcpStream, dir: &Path, counter: &AtomicU64) -> std::io::Result<()> {
    conn.set_nodelay(true)?;
    let mut w = conn.try_clone()?;
    let mut r = BufReader::new(conn);
    reply(&mut w, &format!("220 {HOST} edesk test sink ESMTP"))?;
    let mut greeted = false;
    let mut env = Envelope::default();
    let mut raw = Vec::new();
    loop {
        raw.clear();
        if r.read_until(b'\n', &mut raw)? == 0 {
            return Ok(());
        }
        let line = String::from_utf8_lossy(&raw);
        let line = line.trim_end_matches(['\r', '\n']);
        let (verb, arg) = line.split_once(' ').unwrap_or((line, ""));
        let arg = arg.trim();
        let command = verb.to_ascii_uppercase();
        match command.as_str() {
            "" => reply(&mut w, "500 Error: bad syntax")?,
            "HELO" | "EHLO" if arg.is_empty() => {
                reply(&mut w, &format!("501 Syntax: {command} hostname"))?
            }
            "HELO" | "EHLO" => {
                greeted = true;
                env = Envelope::default();
                reply(&mut w, &greeting(&command))?
            }
            "NOOP" => reply(&mut w, "250 OK")?,
            "RSET" => {
                env = Envelope::default();
                reply(&mut w, "250 OK")?
            }
            "QUIT" => {
                reply(&mut w, "221 Bye")?;
                let _ = w.shutdown(Shutdown::Both);
                return Ok(());
            }
            "VRFY" => reply(
                &mut w,
                "252 Cannot VRFY user, but will accept message and attempt delivery",
            )?,
            "MAIL" if !greeted => reply(&mut w, "503 Error: send HELO first")?,
            "MAIL" => reply(&mut w, on_mail(arg, &mut env))?,
            "RCPT" if !greeted => reply(&mut w, "503 Error: send HELO first")?,
            "RCPT" if env.mail_from.is_none() => reply(&mut w, "503 Error: need MAIL command")?,
            "RCPT" => reply(&mut w, on_rcpt(arg, &mut env))?,
            "DATA" if !greeted => reply(&mut w, "503 Error: send HELO first")?,
            "DATA" if env.rcpt_tos.is_empty() => reply(&mut w, "503 Error: need RCPT command")?,
            "DATA" => {
                reply(&mut w, "354 End data with <CR><LF>.<CR><LF>")?;
                let Some(content) = read_data(&mut r)? else {
                    return Ok(());
                };
                if content.len() > SIZE_LIMIT {
                    reply(&mut w, "552 Error: Too much mail data")?;
                } else {
                    let n = store_message(dir, counter, &env, &content)?;
                    reply(&mut w, &format!("250 OK queued as {n}"))?;
                }
                env = Envelope::default();
            }
            _ => reply(
                &mut w,
                &format!(
                    "500 Error: command \"{}\" not recognized",
                    verb.to_uppercase()
                ),
            )?,
        }
    }
}

/// The reply to HELO, or to EHLO with the extensions aiosmtpd announces.
fn greeting(command: &str) -> String {
    if command == "HELO" {
        format!("250 {HOST}")
    } else {
        format!("250-{HOST}\r\n250-SIZE {SIZE_LIMIT}\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 HELP")
    }
}

/// `MAIL FROM:<path>`: records the reverse-path; the reply to send.
fn on_mail(arg: &str, env: &mut Envelope) -> &'static str {
    let path = arg
        .get(..5)
        .filter(|p| p.eq_ignore_ascii_case("FROM:"))
        .and_then(|_| parse_path(&arg[5..]));
    match path {
        None => "501 Syntax: MAIL FROM: <address>",
        Some(_) if env.mail_from.is_some() => "503 Error: nested MAIL command",
        Some(p) => {
            // aiosmtpd records the null reverse-path as `<>`.
            env.mail_from = Some(if p.is_empty() { "<>".into() } else { p });
            "250 OK"
        }
    }
}

/// `RCPT TO:<path>`: accepts, or refuses by local part (`tempfail…`,
/// `reject…`); the reply to send.
fn on_rcpt(arg: &str, env: &mut Envelope) -> &'static str {
    let path = arg
        .get(..3)
        .filter(|p| p.eq_ignore_ascii_case("TO:"))
        .and_then(|_| parse_path(&arg[3..]))
        .filter(|p| !p.is_empty());
    let Some(p) = path else {
        return "501 Syntax: RCPT TO: <address>";
    };
    let local = p.split('@').next().unwrap_or("").to_lowercase();
    if local.starts_with("tempfail") {
        "451 4.3.0 Mailbox temporarily unavailable"
    } else if local.starts_with("reject") {
        "550 5.1.1 No such user"
    } else {
        env.rcpt_tos.push(p);
        "250 OK"
    }
}

/// The message after `DATA`, dot-unstuffed, up to the `.` line; `None`
/// when the client hung up first.
fn read_data(r: &mut impl BufRead) -> std::io::Result<Option<Vec<u8>>> {
    let mut content = Vec::new();
    let mut raw = Vec::new();
    loop {
        raw.clear();
        if r.read_until(b'\n', &mut raw)? == 0 {
            return Ok(None);
        }
        if raw == b".\r\n" {
            return Ok(Some(content));
        }
        let line = raw.strip_prefix(b".").unwrap_or(&raw);
        content.extend_from_slice(line);
    }
}

/// Writes `DIR/<n>.eml` (through a temporary name, so a reader never sees
/// half a message) with the envelope headers first; returns `n`.
fn store_message(
    dir: &Path,
    counter: &AtomicU64,
    env: &Envelope,
    content: &[u8],
) -> std::io::Result<u64> {
    let n = counter.fetch_add(1, Ordering::SeqCst);
    let head = format!(
        "X-Sink-Mail-From: {}\r\nX-Sink-Rcpt-To: {}\r\n",
        env.mail_from.as_deref().unwrap_or(""),
        env.rcpt_tos.join(",")
    );
    let tmp = dir.join(format!(".{n}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(head.as_bytes())?;
    f.write_all(content)?;
    drop(f);
    std::fs::rename(&tmp, dir.join(format!("{n}.eml")))?;
    Ok(n)
}
