//! LMTP listener (RFC 2033). The MTA hands us each message once; we reply
//! `250` per recipient only after [`Spool::accept`] has flushed the bytes, so
//! a crash at any point either loses nothing we acknowledged or makes the MTA
//! retry (and the spool recognises the retry as a duplicate).
//!
//! Command parsing uses `smtp-proto`; the loop, the limits and the reply
//! timing are ours.

use std::sync::Arc;
use std::time::Duration;

use std::borrow::Cow;

use smtp_proto::request::receiver::DataReceiver;
use smtp_proto::{MailFrom, RcptTo, Request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::intake::{Accepted, Envelope, Spool};

/// Longest command line accepted (RFC 5321 says 512; be lenient).
const MAX_LINE: usize = 4096;
const MAX_RECIPIENTS: usize = 100;

const TOO_MANY: &[u8] = b"421 4.7.0 too many connections, try again later\r\n";
const IDLE: &[u8] = b"421 4.4.2 idle timeout, closing connection\r\n";

/// LMTP listener limits and identity (from `[lmtp]` and `mail.domain`).
#[derive(Debug, Clone)]
pub struct LmtpSettings {
    /// Name announced in the greeting and the `LHLO` reply (`mail.domain`).
    pub hostname: String,
    /// Largest message accepted, in bytes; announced as `SIZE` and enforced
    /// on `MAIL FROM SIZE=` and on the data itself (`552`).
    pub max_message_bytes: usize,
    /// Sessions served at once; the next one gets `421 4.7.0` and is closed.
    pub max_connections: usize,
    /// Silence allowed between two reads (and time allowed for one write to
    /// a client that does not read) before `421 4.4.2` and hang-up.
    pub idle_timeout: Duration,
    /// After `token` is cancelled, sessions get this long to end on their
    /// own before they are dropped.
    pub shutdown_grace: Duration,
}

/// Accepts connections until `token` is cancelled; each connection runs on
/// its own task, tracked so shutdown waits for transactions in flight — for
/// at most `shutdown_grace`. A session dropped then has not been answered
/// `250` for the message in flight, so the MTA retries it (and the spool
/// recognises a duplicate if the store finished the write anyway).
pub async fn run(
    listener: TcpListener,
    spool: Spool,
    settings: LmtpSettings,
    new_mail: Arc<Notify>,
    token: CancellationToken,
) {
    let tracker = TaskTracker::new();
    let settings = Arc::new(settings);
    let slots = Arc::new(Semaphore::new(settings.max_connections));
    let abandon = CancellationToken::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = token.cancelled() => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "LMTP accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            // The server speaks first in LMTP, so the client has sent
            // nothing yet: a non-blocking write of the 421 into the empty
            // socket buffer always fits, and closing loses nothing.
            tracing::warn!(%peer, max = settings.max_connections, "LMTP connection refused: too many connections");
            let _ = stream.try_write(TOO_MANY);
            continue;
        };
        let session = Session {
            spool: spool.clone(),
            settings: settings.clone(),
            new_mail: new_mail.clone(),
            token: token.clone(),
        };
        let span = tracing::info_span!("lmtp", %peer);
        let abandon = abandon.clone();
        tracker.spawn(
            async move {
                let _slot = slot;
                tokio::select! {
                    r = session.handle(stream) => if let Err(e) = r {
                        tracing::debug!(error = %e, "LMTP connection ended");
                    },
                    _ = abandon.cancelled() => {
                        tracing::warn!("LMTP session abandoned at the end of the grace period");
                    }
                }
            }
            .instrument(span),
        );
    }
    // Stop accepting: new connections are refused by the kernel rather than
    // left in a backlog during the drain.
    drop(listener);
    tracker.close();
    if tokio::time::timeout(settings.shutdown_grace, tracker.wait())
        .await
        .is_err()
    {
        abandon.cancel();
        tracker.wait().await;
    }
}

struct Session {
    spool: Spool,
    settings: Arc<LmtpSettings>,
    new_mail: Arc<Notify>,
    token: CancellationToken,
}

#[derive(Default)]
struct Transaction {
    mail_from: Option<String>,
    rcpt_to: Vec<String>,
}

/// Where the dialogue stands (RFC 2033 §4.1): which verbs are allowed
/// follows from the state alone, and a transaction exists only between MAIL
/// and the end of DATA (or RSET / LHLO).
enum State {
    /// Connected, no LHLO yet: a transaction cannot start.
    Connected,
    /// LHLO done, no transaction open.
    Ready,
    /// MAIL accepted; the recipients so far.
    Mail(Transaction),
}

/// What the session does after a command.
enum Step {
    /// Write this reply, then read the next command.
    Reply(String),
    /// The session is over: the handler has said what there was to say, or
    /// the client is gone.
    Close,
}

enum Read {
    Data,
    Closed,
    Cancelled,
    Idle,
}

/// One connection: the socket, bytes read but not yet used (pipelined
/// commands) and the dialogue state; one handler per verb.
struct Conn<'a> {
    session: &'a Session,
    stream: TcpStream,
    buf: Vec<u8>,
    state: State,
}

impl Session {
    async fn handle(&self, mut stream: TcpStream) -> std::io::Result<()> {
        let _ = stream.set_nodelay(true);
        let host = &self.settings.hostname;
        self.send(
            &mut stream,
            format!("220 {host} LMTP edesk ready\r\n").as_bytes(),
        )
        .await?;
        let mut conn = Conn {
            session: self,
            stream,
            buf: Vec::with_capacity(8192),
            state: State::Connected,
        };
        while let Some(line) = conn.next_line().await? {
            match conn.command(&line).await? {
                Step::Reply(reply) => conn.send(reply.as_bytes()).await?,
                Step::Close => break,
            }
        }
        Ok(())
    }

    /// Writes a reply. A client that stops reading (its receive window
    /// full) would block us forever: after the idle timeout it is dropped.
    async fn send(&self, stream: &mut TcpStream, bytes: &[u8]) -> std::io::Result<()> {
        match tokio::time::timeout(self.settings.idle_timeout, stream.write_all(bytes)).await {
            Ok(r) => r,
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "client does not read its replies",
            )),
        }
    }

    async fn read_more(&self, stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<Read> {
        let mut chunk = [0u8; 16 * 1024];
        tokio::select! {
            _ = self.token.cancelled() => Ok(Read::Cancelled),
            r = tokio::time::timeout(self.settings.idle_timeout, stream.read(&mut chunk)) => match r {
                Err(_) => Ok(Read::Idle),
                Ok(Ok(0)) => Ok(Read::Closed),
                Ok(Ok(n)) => {
                    buf.extend_from_slice(&chunk[..n]);
                    Ok(Read::Data)
                }
                Ok(Err(e)) => Err(e),
            },
        }
    }

    /// Reads the dot-terminated body. `Ok(None)`: the client went away (or we
    /// are shutting down) before the end; nothing was acknowledged.
    /// `Ok(Some(Err(size)))`: the body exceeded the limit and was discarded.
    async fn receive_data(
        &self,
        stream: &mut TcpStream,
        buf: &mut Vec<u8>,
    ) -> std::io::Result<Option<Result<Vec<u8>, usize>>> {
        let max = self.settings.max_message_bytes;
        let mut receiver = DataReceiver::new();
        let mut body = Vec::new();
        let mut seen = 0usize;
        let mut too_big = false;
        loop {
            let pending = std::mem::take(buf);
            let mut iter = pending.iter();
            let before = body.len();
            let done = receiver.ingest(&mut iter, &mut body);
            seen += body.len().saturating_sub(before);
            // Pipelined commands after the final dot stay in the buffer.
            buf.extend_from_slice(iter.as_slice());
            if body.len() > max {
                too_big = true;
                body.clear();
            }
            if done {
                return Ok(Some(if too_big { Err(seen) } else { Ok(body) }));
            }
            match self.read_more(stream, buf).await? {
                Read::Data => {}
                Read::Closed => return Ok(None),
                Read::Cancelled => {
                    let _ = self
                        .send(stream, b"421 4.3.2 shutting down, message not accepted\r\n")
                        .await;
                    return Ok(None);
                }
                Read::Idle => {
                    tracing::info!("LMTP session idle during DATA, closing");
                    let _ = self.send(stream, IDLE).await;
                    return Ok(None);
                }
            }
        }
    }

    /// Stores the message and builds one reply line per recipient (LMTP).
    async fn deliver(&self, tx: Transaction, body: Result<Vec<u8>, usize>) -> String {
        let n = tx.rcpt_to.len();
        let line = match body {
            Err(size) => {
                tracing::warn!(size, "message over the size limit refused");
                "552 5.3.4 message too big\r\n".to_string()
            }
            Ok(raw) => {
                let envelope = Envelope {
                    source: "lmtp".into(),
                    mail_from: tx.mail_from,
                    rcpt_to: tx.rcpt_to,
                    received_at: chrono::Utc::now(),
                };
                match self.spool.accept(&raw, envelope).await {
                    Ok(Accepted::New(id)) => {
                        tracing::info!(id, size = raw.len(), "message accepted");
                        self.new_mail.notify_one();
                        format!("250 2.0.0 <{id}> accepted\r\n")
                    }
                    Ok(Accepted::Duplicate(id)) => {
                        tracing::info!(id, "duplicate delivery accepted once");
                        format!("250 2.0.0 <{id}> already accepted\r\n")
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot store inbound message");
                        if e.is_storage_full() {
                            "452 4.3.1 insufficient storage, try again later\r\n".into()
                        } else {
                            "451 4.3.0 cannot store the message, try again later\r\n".into()
                        }
                    }
                }
            }
        };
        line.repeat(n)
    }
}

impl Conn<'_> {
    async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.session.send(&mut self.stream, bytes).await
    }

    /// The next command line, possibly already in the buffer (pipelining).
    /// `None`: the session ends (too long a line, the client left, shutdown
    /// or idle timeout), with the reply said where there is one.
    async fn next_line(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                return Ok(Some(self.buf.drain(..=pos).collect()));
            }
            if self.buf.len() > MAX_LINE {
                self.send(b"500 5.5.2 line too long\r\n").await?;
                return Ok(None);
            }
            match self
                .session
                .read_more(&mut self.stream, &mut self.buf)
                .await?
            {
                Read::Data => {}
                Read::Closed => return Ok(None),
                Read::Cancelled => {
                    self.send(b"421 4.3.2 shutting down, try again later\r\n")
                        .await?;
                    return Ok(None);
                }
                Read::Idle => {
                    tracing::info!("LMTP session idle, closing");
                    self.send(IDLE).await?;
                    return Ok(None);
                }
            }
        }
    }

    /// Parses one command line and runs its verb's handler.
    async fn command(&mut self, line: &[u8]) -> std::io::Result<Step> {
        let reply: String = match Request::parse(&mut line.iter()) {
            Ok(Request::Lhlo { host }) => self.lhlo(&host),
            Ok(Request::Ehlo { .. } | Request::Helo { .. }) => {
                "500 5.5.1 this is an LMTP server: use LHLO\r\n".into()
            }
            Ok(Request::Mail { from }) => self.mail(&from),
            Ok(Request::Rcpt { to }) => self.rcpt(&to),
            Ok(Request::Data) => return self.data().await,
            Ok(Request::Bdat { .. }) => "502 5.5.1 CHUNKING not offered\r\n".into(),
            Ok(Request::Rset) => self.rset(),
            Ok(Request::Noop { .. }) => "250 2.0.0 OK\r\n".into(),
            Ok(Request::Vrfy { .. }) => "252 2.1.5 cannot verify, will accept\r\n".into(),
            Ok(Request::Quit) => {
                self.send(b"221 2.0.0 bye\r\n").await?;
                return Ok(Step::Close);
            }
            Ok(Request::StartTls) => "502 5.5.1 STARTTLS not offered on LMTP\r\n".into(),
            Ok(other) => format!("502 5.5.1 {} not implemented\r\n", other.name()),
            Err(smtp_proto::Error::UnknownCommand) => "500 5.5.2 command not recognized\r\n".into(),
            Err(e) => format!("501 5.5.4 syntax error: {}\r\n", describe(&e)),
        };
        Ok(Step::Reply(reply))
    }

    /// LHLO: (re)starts the dialogue; any open transaction is dropped.
    fn lhlo(&mut self, client: &str) -> String {
        tracing::debug!(%client, "LHLO");
        self.state = State::Ready;
        let settings = &self.session.settings;
        lhlo_reply(&settings.hostname, settings.max_message_bytes)
    }

    /// MAIL: opens a transaction after LHLO. A declared SIZE over the limit
    /// is refused here, before the client sends the body.
    fn mail(&mut self, from: &MailFrom<Cow<'_, str>>) -> String {
        match self.state {
            State::Connected => "503 5.5.1 LHLO first\r\n".into(),
            State::Mail(_) => "503 5.5.1 nested MAIL command\r\n".into(),
            State::Ready if from.size > self.session.settings.max_message_bytes => {
                "552 5.3.4 message size exceeds fixed maximum message size\r\n".into()
            }
            State::Ready => {
                self.state = State::Mail(Transaction {
                    mail_from: Some(from.address.to_string()),
                    rcpt_to: Vec::new(),
                });
                "250 2.1.0 sender OK\r\n".into()
            }
        }
    }

    /// RCPT: adds a recipient to the open transaction, up to the limit.
    fn rcpt(&mut self, to: &RcptTo<Cow<'_, str>>) -> String {
        match &mut self.state {
            State::Mail(t) if t.rcpt_to.len() >= MAX_RECIPIENTS => {
                "452 4.5.3 too many recipients\r\n".into()
            }
            State::Mail(t) => {
                t.rcpt_to.push(to.address.to_string());
                "250 2.1.5 recipient OK\r\n".into()
            }
            State::Connected | State::Ready => "503 5.5.1 MAIL first\r\n".into(),
        }
    }

    /// DATA: receives the body and answers once per recipient. The
    /// transaction ends here whatever the outcome; a refused DATA keeps the
    /// state it found.
    async fn data(&mut self) -> std::io::Result<Step> {
        match std::mem::replace(&mut self.state, State::Ready) {
            State::Mail(t) if !t.rcpt_to.is_empty() => {
                self.send(b"354 2.0.0 send the message, end with <CRLF>.<CRLF>\r\n")
                    .await?;
                let body = self
                    .session
                    .receive_data(&mut self.stream, &mut self.buf)
                    .await?;
                Ok(match body {
                    None => Step::Close,
                    Some(body) => Step::Reply(self.session.deliver(t, body).await),
                })
            }
            State::Mail(t) => {
                self.state = State::Mail(t);
                Ok(Step::Reply("503 5.5.1 RCPT first\r\n".into()))
            }
            other => {
                self.state = other;
                Ok(Step::Reply("503 5.5.1 MAIL first\r\n".into()))
            }
        }
    }

    /// RSET: drops the transaction; an LHLO already given stays given.
    fn rset(&mut self) -> String {
        if let State::Mail(_) = self.state {
            self.state = State::Ready;
        }
        "250 2.0.0 OK\r\n".into()
    }
}

/// The LHLO reply. `8BITMIME` and `SMTPUTF8` (RFC 6531) are offered because
/// the bytes are stored exactly as they come and parsed later: an MTA that
/// holds mail with raw UTF-8 headers or addresses (common from modern
/// clients) must not bounce it with "5.6.7 SMTPUTF8 is required, but was not
/// offered".
fn lhlo_reply(host: &str, max_message_bytes: usize) -> String {
    format!(
        "250-{host}\r\n250-PIPELINING\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 SIZE {max_message_bytes}\r\n"
    )
}

fn describe(e: &smtp_proto::Error) -> String {
    match e {
        smtp_proto::Error::InvalidSenderAddress => "invalid sender address".into(),
        smtp_proto::Error::InvalidRecipientAddress => "invalid recipient address".into(),
        smtp_proto::Error::SyntaxError { syntax } => format!("expected {syntax}"),
        smtp_proto::Error::InvalidParameter { param } => format!("invalid parameter {param}"),
        smtp_proto::Error::UnsupportedParameter { param } => {
            format!("unsupported parameter {param}")
        }
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inbound::intake::MailMeta;

    /// Runs the listener on an ephemeral port over a fresh store.
    async fn server() -> (
        tempfile::TempDir,
        Spool,
        std::net::SocketAddr,
        CancellationToken,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(dir.path()).unwrap();
        let spool = Spool::open(&store);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let token = CancellationToken::new();
        let settings = LmtpSettings {
            hostname: "lmtp.test".into(),
            max_message_bytes: 1 << 20,
            max_connections: 4,
            idle_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(1),
        };
        tokio::spawn(run(
            listener,
            spool.clone(),
            settings,
            Arc::new(Notify::new()),
            token.clone(),
        ));
        (dir, spool, addr, token)
    }

    /// Reads until `lines` complete replies (last line `NNN ` form) arrived.
    async fn replies(s: &mut TcpStream, lines: usize) -> String {
        let mut out = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let text = String::from_utf8_lossy(&out).to_string();
            let finals = text
                .lines()
                .filter(|l| l.len() >= 4 && l.as_bytes()[3] == b' ')
                .count();
            if finals >= lines {
                return text;
            }
            let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut chunk))
                .await
                .expect("reply in time")
                .unwrap();
            assert!(n > 0, "closed early: {text}");
            out.extend_from_slice(&chunk[..n]);
        }
    }

    #[tokio::test]
    async fn smtputf8_mail_is_offered_accepted_and_stored_as_it_came() {
        let (_dir, spool, addr, token) = server().await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        replies(&mut s, 1).await;
        s.write_all(b"LHLO mx.example.org\r\n").await.unwrap();
        let lhlo = replies(&mut s, 1).await;
        assert!(lhlo.contains("250-SMTPUTF8"), "{lhlo}");
        assert!(lhlo.contains("250-8BITMIME"), "{lhlo}");
        // Raw UTF-8 in the envelope and the headers, as Postfix relays a
        // message submitted with SMTPUTF8.
        let body = "From: Jörg Müller <jörg@müller.example>\r\nTo: support@edesk.example.com, reply+abc@edesk.example.com\r\nSubject: Lizenz für Bestellung – dringend\r\nMessage-ID: <utf8-1@müller.example>\r\n\r\nGrüße, où est ma commande ?\r\n";
        let mut session = "MAIL FROM:<jörg@müller.example> SMTPUTF8 BODY=8BITMIME\r\nRCPT TO:<support@edesk.example.com>\r\nRCPT TO:<reply+abc@edesk.example.com>\r\nDATA\r\n"
            .as_bytes()
            .to_vec();
        s.write_all(&session).await.unwrap();
        let r = replies(&mut s, 4).await;
        assert!(r.contains("354"), "{r}");
        session = body.as_bytes().to_vec();
        session.extend_from_slice(b".\r\n");
        s.write_all(&session).await.unwrap();
        // LMTP: one reply per recipient.
        let r = replies(&mut s, 2).await;
        assert_eq!(r.matches("250 2.0.0").count(), 2, "{r}");
        token.cancel();

        let id = spool.pending().unwrap()[0];
        assert_eq!(spool.raw(id).unwrap().unwrap(), body.as_bytes());
        let meta: MailMeta = spool.meta(id).unwrap().unwrap();
        assert_eq!(
            meta.envelope.mail_from.as_deref(),
            Some("jörg@müller.example")
        );
        assert_eq!(meta.envelope.rcpt_to.len(), 2);
    }
}
