//! Clients that stall, hoard connections or never finish: the daemon keeps
//! serving others and still stops within its grace period. Liveness bounds
//! here are generous on purpose; nothing measures speed.

use crate::support;
use crate::support::Served;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use support::spawn_daemon;

/// Generous bound for "the server reacts to a timeout of well under a second".
const LIVENESS: Duration = Duration::from_secs(15);

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(LIVENESS)).unwrap();
    s
}

/// Reads until the server closes the connection; panics if it is still open
/// after `LIVENESS`. Returns what was received (a reset counts as closed).
fn read_until_closed(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!(
                    "server kept the connection open; got so far: {:?}",
                    String::from_utf8_lossy(&out)
                )
            }
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn read_line(r: &mut BufReader<TcpStream>) -> String {
    let mut line = String::new();
    r.read_line(&mut line).expect("read a reply line");
    line
}

/// An LMTP session that has been greeted (so the server accepted it).
fn lmtp_greeted(addr: SocketAddr) -> BufReader<TcpStream> {
    let mut r = BufReader::new(connect(addr));
    let hello = read_line(&mut r);
    assert!(hello.starts_with("220 "), "{hello:?}");
    r
}

#[test]
fn http_slowloris_is_disconnected_while_others_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let d = spawn_daemon(dir.path(), &[("EDESK_HTTP__HEADER_TIMEOUT_MS", "500")]);

    // Half a request line and headers, then nothing.
    let mut slow = connect(d.http);
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    // A connection that never sends a byte holds a slot just the same.
    let mut silent = connect(d.http);

    let (status, body) = d.get("/healthz");
    assert_eq!(status, 200, "{body}");

    read_until_closed(&mut slow);
    read_until_closed(&mut silent);
    let (status, _) = d.get("/healthz");
    assert_eq!(status, 200);
}

#[test]
fn http_request_that_never_completes_gets_a_json_408() {
    let dir = tempfile::tempdir().unwrap();
    let d = spawn_daemon(dir.path(), &[("EDESK_HTTP__REQUEST_TIMEOUT_MS", "500")]);
    let mut s = connect(d.http);
    // Headers promise 100 bytes of body; 10 arrive.
    s.write_all(
        b"POST /v1/orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
          Content-Length: 100\r\n\r\n{\"so\": \"1",
    )
    .unwrap();
    let resp = read_until_closed_or_response(&mut s);
    assert!(resp.starts_with("HTTP/1.1 408"), "{resp}");
    assert!(resp.contains("application/json"), "{resp}");
    assert!(resp.contains("\"error\""), "{resp}");
}

/// Reads until a complete response head and body (by Content-Length) arrive
/// or the connection closes.
fn read_until_closed_or_response(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&out).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().to_string())
                })
                .and_then(|v| v.parse::<usize>().ok());
            if len.is_some_and(|n| body.len() >= n) {
                return text;
            }
        }
        match s.read(&mut buf) {
            Ok(0) => return text,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => panic!("no response: {e}; got {text:?}"),
        }
    }
}

#[test]
fn http_connections_over_the_cap_are_refused_then_served_again() {
    let dir = tempfile::tempdir().unwrap();
    let d = spawn_daemon(
        dir.path(),
        &[
            ("EDESK_HTTP__MAX_CONNECTIONS", "2"),
            ("EDESK_HTTP__HEADER_TIMEOUT_MS", "60000"),
        ],
    );
    let mut hoard: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = connect(d.http);
            s.write_all(b"GET /healthz HTTP/1.1\r\n").unwrap();
            s
        })
        .collect();
    // Accepted in order, so this one is the third.
    let mut third = connect(d.http);
    let resp = read_until_closed(&mut third);
    assert!(resp.starts_with("HTTP/1.1 503"), "{resp:?}");
    assert!(resp.contains("too many connections"), "{resp:?}");

    hoard.clear();
    d.wait_for("a free connection slot", || {
        let mut s = connect(d.http);
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .ok()?;
        let resp = read_until_closed(&mut s);
        resp.starts_with("HTTP/1.1 200").then_some(())
    });
}

#[test]
fn lmtp_connections_over_the_cap_get_421() {
    let dir = tempfile::tempdir().unwrap();
    let d = spawn_daemon(dir.path(), &[("EDESK_LMTP__MAX_CONNECTIONS", "2")]);
    let mut first = lmtp_greeted(d.lmtp);
    let _second = lmtp_greeted(d.lmtp);

    let mut third = connect(d.lmtp);
    let reply = read_until_closed(&mut third);
    assert!(
        reply.starts_with("421 4.7.0 too many connections"),
        "{reply:?}"
    );

    first.get_mut().write_all(b"QUIT\r\n").unwrap();
    assert!(read_line(&mut first).starts_with("221"));
    drop(first);
    d.wait_for("a free LMTP slot", || {
        let mut r = BufReader::new(connect(d.lmtp));
        read_line(&mut r).starts_with("220 ").then_some(())
    });
}

#[test]
fn lmtp_idle_session_gets_421_and_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let d = spawn_daemon(dir.path(), &[("EDESK_LMTP__IDLE_TIMEOUT_MS", "300")]);
    let mut r = lmtp_greeted(d.lmtp);
    let rest = read_until_closed(r.get_mut());
    // The greeting was consumed by the BufReader; anything it buffered after
    // it comes first.
    let rest = format!("{}{rest}", String::from_utf8_lossy(r.buffer()));
    assert!(
        rest.starts_with("421 4.4.2 idle timeout, closing connection\r\n"),
        "{rest:?}"
    );
}

#[test]
fn sigterm_with_stalled_clients_exits_within_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let d = spawn_daemon(
        dir.path(),
        &[
            ("EDESK_SHUTDOWN__GRACE_MS", "1000"),
            ("EDESK_HTTP__HEADER_TIMEOUT_MS", "600000"),
            ("EDESK_HTTP__REQUEST_TIMEOUT_MS", "600000"),
        ],
    );
    // HTTP: one client stalled in its headers, one in its body.
    let mut in_headers = connect(d.http);
    in_headers
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let mut in_body = connect(d.http);
    in_body
        .write_all(b"POST /v1/orders HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n[")
        .unwrap();
    // LMTP: one idle after the greeting, one stalled in DATA.
    let mut idle = lmtp_greeted(d.lmtp);
    let mut in_data = lmtp_greeted(d.lmtp);
    in_data
        .get_mut()
        .write_all(b"LHLO test\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n")
        .unwrap();
    loop {
        let line = read_line(&mut in_data);
        assert!(!line.is_empty(), "closed before DATA");
        if line.starts_with("354") {
            break;
        }
    }
    in_data
        .get_mut()
        .write_all(b"Subject: half\r\n\r\nnot finished")
        .unwrap();
    // Make sure the HTTP connections are being served before the signal.
    assert_eq!(d.get("/healthz").0, 200);

    let started = Instant::now();
    assert!(d.terminate(), "daemon did not exit cleanly");
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(8),
        "exit took {took:?} with a 1 s grace period"
    );

    let said = read_until_closed(idle.get_mut());
    assert!(said.starts_with("421 4.3.2"), "{said:?}");
    let said = read_until_closed(in_data.get_mut());
    assert!(said.starts_with("421 4.3.2"), "{said:?}");
    read_until_closed(&mut in_headers);
    read_until_closed(&mut in_body);
}

fn order_json(name: &str) -> String {
    serde_json::json!({
        "so": "10458321", "lang": "en",
        "lines": [{"line": "1.1", "pid": "L-ASA5516-TD-1Y",
                   "images": [{"file": "asa.SPA", "md5": "9fb4c92d620d4be2a9f190e7fa6332b3"}]}],
        "recipients": [{"name": name, "email": "j.harper@acme.example.com"}]
    })
    .to_string()
}

#[test]
fn megabyte_recipient_name_is_a_422_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let d = spawn_daemon(dir.path(), &[]);
    let (status, body) = d.post_json("/v1/orders", &order_json(&"x".repeat(1_000_000)));
    assert_eq!(status, 422, "{}", &body[..body.len().min(500)]);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["so"], "10458321");
    assert_eq!(v["field"], "recipients[0].name");
    assert!(v["error"].as_str().unwrap().contains("at most 256"), "{v}");
    // The refused value is not echoed back in full.
    assert!(body.len() < 4096, "{} bytes of error", body.len());
}

#[test]
fn bidi_override_in_names_and_notes_is_a_422_naming_the_code_point() {
    let dir = tempfile::tempdir().unwrap();
    let d = spawn_daemon(dir.path(), &[]);
    let (status, body) = d.post_json("/v1/orders", &order_json("Ana\u{202E}gpj.exe"));
    assert_eq!(status, 422, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["field"], "recipients[0].name");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("U+202E RIGHT-TO-LEFT OVERRIDE"),
        "{v}"
    );

    let (status, body) = d.post_json("/v1/orders", &order_json("Ana Lima"));
    assert_eq!(status, 201, "{body}");
    let oba = serde_json::json!({
        "sent_by": "partner@example.net", "grouping": "grouped",
        "lines": [{"line": "1.1", "to": "ana@example.com", "carton_note": "Carton\u{2066} 4"}]
    });
    let (status, body) = d.post_json("/v1/orders/10458321/oba", &oba.to_string());
    assert_eq!(status, 422, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["field"], "lines[0].carton_note");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("U+2066 LEFT-TO-RIGHT ISOLATE"),
        "{v}"
    );
}
