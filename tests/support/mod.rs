//! Helpers shared by the notify/orders integration tests.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The aiosmtpd sink of `tests/support/smtp_sink.py`, killed on drop.
pub struct Sink {
    pub port: u16,
    pub dir: PathBuf,
    child: Child,
}

impl Sink {
    pub fn start(dir: &Path) -> Sink {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/smtp_sink.py");
        let mut child = Command::new("/usr/bin/python3")
            .arg(script)
            .arg(port.to_string())
            .arg(dir)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start /usr/bin/python3 tests/support/smtp_sink.py (needs python3-aiosmtpd)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "sink did not start");
        Sink {
            port,
            dir: dir.to_path_buf(),
            child,
        }
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Raw messages received so far, in arrival order.
    pub fn messages(&self) -> Vec<Vec<u8>> {
        let mut files: Vec<(u64, PathBuf)> = std::fs::read_dir(&self.dir)
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
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn config(data: &Path, smtp: Option<String>) -> edesk::config::Config {
    let mut c = edesk::config::Config {
        data_dir: data.to_path_buf(),
        ..Default::default()
    };
    c.smtp.url = smtp;
    c.outbox.backoff_base_ms = 20;
    c.outbox.backoff_max_ms = 100;
    c.outbox.max_attempts = 3;
    c
}

pub fn header<'a>(m: &'a mail_parser::Message<'a>, name: &str) -> Option<String> {
    m.header_raw(name).map(|s| s.trim().to_string())
}
