//! DKIM, SPF and DMARC verdicts on inbound mail (`mail-auth`), through a
//! resolver edesk is given: DNS TXT records loaded from a file answer
//! first (tests and offline sites use only them), the system's resolver
//! answers the rest when `inbound.verify_auth = "dns"`. Nothing here
//! decides: the verdicts are evidence for `inbound::auth` (a command's
//! sender, a team's reply) and are shown by `mail inspect` and on tickets.
//!
//! In `records` mode the file is the whole zone: a name not in it does not
//! exist. In `dns` mode a lookup DNS cannot answer is a `temperror`, never
//! a `fail`.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::RwLock;
use std::time::Instant;

use mail_auth::common::parse::TxtRecordParser;
use mail_auth::common::resolver::ToFqdn;
use mail_auth::common::verify::DomainKey;
use mail_auth::dmarc::Dmarc;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::hickory_resolver::config::{ResolverConfig, ResolverOpts};
use mail_auth::hickory_resolver::proto::op::ResponseCode;
use mail_auth::spf::Spf;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{
    AuthenticatedMessage, DkimResult, DmarcResult, MessageAuthenticator, Parameters, ResolverCache,
    SpfOutput, SpfResult, Txt,
};
use serde::Serialize;

pub use crate::config::VerifyMode;

/// Why verification cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The `inbound.auth_records` file cannot be read.
    #[error("{path}: {source}")]
    Read {
        /// The file, as configured.
        path: String,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// A line of the records file is not a valid record.
    #[error("{path} line {line}: {message}")]
    Record {
        /// The file, as configured.
        path: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong with the line.
        message: String,
    },
    /// The DNS resolver (or its runtime) cannot be set up.
    #[error("resolver: {0}")]
    Resolver(String),
}

/// TXT records answered without asking DNS (and what DNS answered, kept
/// for later mails). Keys are lowercase names with the final dot.
#[derive(Default)]
pub struct Records {
    txt: RwLock<HashMap<Box<str>, Txt>>,
    /// The records are the whole zone (`records` mode): a name not among
    /// them does not exist, rather than being asked to a resolver.
    complete: bool,
}

/// How many answers from DNS are kept (a hostile sender can make us look
/// up many names).
const MAX_CACHED: usize = 10_000;

impl Records {
    /// Parses a records file: one record a line, `NAME VALUE` (the value
    /// may be quoted, as in a zone file, in one or several strings); `#`
    /// starts a comment. The kind follows the name and value:
    /// `SEL._domainkey.DOMAIN` a DKIM key, `_dmarc.DOMAIN` a DMARC policy,
    /// a value starting `v=spf1` an SPF policy.
    pub fn parse(path: &str, text: &str) -> Result<Records, VerifyError> {
        let records = Records::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |message: String| VerifyError::Record {
                path: path.to_string(),
                line: n + 1,
                message,
            };
            let (name, value) = line
                .split_once(char::is_whitespace)
                .ok_or_else(|| bad("expected NAME VALUE".into()))?;
            records.add(name, &unquote(value.trim())).map_err(bad)?;
        }
        Ok(records)
    }

    /// Adds one TXT record (see [`Records::parse`] for how its kind is told).
    pub fn add(&self, name: &str, value: &str) -> Result<(), String> {
        let key: Box<str> = name.to_fqdn().into();
        let lower = key.to_ascii_lowercase();
        let bytes = value.as_bytes();
        let txt: Txt = if lower.contains("._domainkey.") {
            DomainKey::parse(bytes)
                .map_err(|e| format!("DKIM key: {e}"))?
                .into()
        } else if lower.starts_with("_dmarc.") {
            Dmarc::parse(bytes)
                .map_err(|e| format!("DMARC record: {e}"))?
                .into()
        } else if value
            .trim_start()
            .to_ascii_lowercase()
            .starts_with("v=spf1")
        {
            Spf::parse(bytes)
                .map_err(|e| format!("SPF record: {e}"))?
                .into()
        } else {
            return Err(format!("{name}: not a DKIM key, DMARC or SPF record"));
        };
        if let Ok(mut map) = self.txt.write() {
            map.insert(key, txt);
        }
        Ok(())
    }
}

/// Joins the quoted strings of a zone-file value (`"v=DKIM1; " "p=…"`).
fn unquote(value: &str) -> String {
    if !value.starts_with('"') {
        return value.to_string();
    }
    value
        .split('"')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, s)| s)
        .collect()
}

impl ResolverCache<Box<str>, Txt> for Records {
    fn get<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let found = self.txt.read().ok()?.get(name).cloned();
        found.or_else(|| {
            self.complete.then(|| {
                Txt::Error(mail_auth::Error::Dns(mail_auth::DnsError::RecordNotFound(
                    ResponseCode::NXDomain,
                )))
            })
        })
    }

    fn remove<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.txt.write().ok()?.remove(name)
    }

    fn insert(&self, key: Box<str>, value: Txt, _valid_until: Instant) {
        if let Ok(mut map) = self.txt.write()
            && map.len() < MAX_CACHED
        {
            map.entry(key).or_insert(value);
        }
    }
}

/// One DKIM signature's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DkimVerdict {
    /// The signing domain (`d=`).
    pub domain: String,
    /// `pass`, `fail`, `neutral`, `temperror`, `permerror` or `none`.
    pub result: String,
}

/// The SPF or DMARC verdict for a domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DomainVerdict {
    /// The domain checked: the envelope sender's for SPF, the From domain for
    /// DMARC.
    pub domain: String,
    /// `pass`, `fail`, `softfail`, `neutral`, `temperror`, `permerror` or `none`.
    pub result: String,
}

/// What DKIM, SPF and DMARC said about a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Verdicts {
    /// The From header's domain the verdicts are about.
    pub from_domain: String,
    /// One verdict per DKIM signature; empty when the mail is unsigned.
    pub dkim: Vec<DkimVerdict>,
    /// Absent when the connecting address is unknown (no `Received` line
    /// of ours with `[IP]`).
    pub spf: Option<DomainVerdict>,
    /// Always set by the verifier; `None` only in a default (unverified) value.
    pub dmarc: Option<DomainVerdict>,
}

impl Verdicts {
    /// The From domain when a DKIM signature of that domain (or its parent:
    /// relaxed alignment) passed, or DMARC passed: the mail comes from
    /// that domain.
    pub fn aligned_pass(&self) -> Option<&str> {
        let from = self.from_domain.as_str();
        if from.is_empty() {
            return None;
        }
        let dkim = self
            .dkim
            .iter()
            .any(|d| d.result == "pass" && aligned(&d.domain, from));
        let dmarc = self
            .dmarc
            .as_ref()
            .is_some_and(|d| d.result == "pass" && d.domain.eq_ignore_ascii_case(from));
        (dkim || dmarc).then_some(from)
    }

    /// One line for the reasons.
    pub fn reason(&self) -> String {
        let dkim: Vec<String> = self
            .dkim
            .iter()
            .map(|d| format!("{}={}", d.domain, d.result))
            .collect();
        let one = |v: &Option<DomainVerdict>| {
            v.as_ref().map_or("none".to_string(), |v| {
                format!("{} ({})", v.result, v.domain)
            })
        };
        format!(
            "verified: dkim {}; spf {}; dmarc {}; aligned with {}: {}",
            if dkim.is_empty() {
                "none".into()
            } else {
                dkim.join(", ")
            },
            one(&self.spf),
            one(&self.dmarc),
            self.from_domain,
            if self.aligned_pass().is_some() {
                "yes"
            } else {
                "no"
            }
        )
    }
}

/// Relaxed alignment: the signing domain is the From domain or one of its
/// parents (never a bare top-level domain).
fn aligned(signer: &str, from: &str) -> bool {
    let (s, f) = (signer.to_ascii_lowercase(), from.to_ascii_lowercase());
    s == f || (s.contains('.') && f.ends_with(&format!(".{s}")))
}

/// The SMTP facts SPF needs: the client's address and HELO name, from the
/// newest `Received` line (added by the MTA in front of edesk), and the
/// envelope sender.
#[derive(Debug, Clone, Default)]
pub struct Connection {
    /// The client's address; `None` when no `Received` line of ours has `[IP]`.
    pub ip: Option<IpAddr>,
    /// The HELO name the client gave.
    pub helo: Option<String>,
    /// The envelope sender; `None` for the null sender `<>` or when unknown.
    pub mail_from: Option<String>,
}

impl Connection {
    /// Reads the newest `Received: from HELO (… [IP]) by …` of `raw`.
    pub fn from_received(raw: &[u8], mail_from: Option<&str>) -> Connection {
        let mut c = Connection {
            mail_from: mail_from.map(str::to_string).filter(|m| !m.is_empty()),
            ..Connection::default()
        };
        let Some(msg) = mail_parser::MessageParser::default().parse_headers(raw) else {
            return c;
        };
        let Some(received) = msg
            .headers()
            .iter()
            .find(|h| h.name().eq_ignore_ascii_case("received"))
            .and_then(|h| raw.get(h.offset_start() as usize..h.offset_end() as usize))
        else {
            return c;
        };
        let text = String::from_utf8_lossy(received).replace(['\r', '\n', '\t'], " ");
        let mut words = text.split_whitespace();
        if words.next().is_some_and(|w| w.eq_ignore_ascii_case("from")) {
            c.helo = words.next().map(str::to_string);
        }
        c.ip = text
            .split('[')
            .skip(1)
            .filter_map(|s| s.split(']').next())
            .find_map(|s| s.trim_start_matches("IPv6:").parse().ok());
        c
    }
}

/// The verifier the configuration asks for (`inbound.verify_auth`,
/// `inbound.auth_records`), or `None` when verification is off.
pub fn from_config(config: &crate::config::Config) -> Result<Option<Verifier>, VerifyError> {
    let records = match &config.inbound.auth_records {
        Some(path) => {
            let shown = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|source| VerifyError::Read {
                path: shown.clone(),
                source,
            })?;
            Records::parse(&shown, &text)?
        }
        None => Records::default(),
    };
    Verifier::new(config.inbound.verify_auth, records, &config.mail.domain)
}

/// Verifies messages with `mail-auth` over the configured resolver.
pub struct Verifier {
    auth: MessageAuthenticator,
    records: Records,
    /// Our own host name, for SPF's `%{r}` macro.
    host: String,
    rt: tokio::runtime::Runtime,
}

impl Verifier {
    /// A verifier answering from `records`, and from the system's DNS
    /// resolver when `mode` is [`VerifyMode::Dns`]; `None` when off.
    pub fn new(
        mode: VerifyMode,
        mut records: Records,
        host: &str,
    ) -> Result<Option<Verifier>, VerifyError> {
        if mode == VerifyMode::Off {
            return Ok(None);
        }
        records.complete = mode == VerifyMode::Records;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| VerifyError::Resolver(e.to_string()))?;
        let auth = {
            let _entered = rt.enter();
            match mode {
                VerifyMode::Dns => MessageAuthenticator::new_system_conf(),
                // No name server: a record not in the file is a temperror.
                _ => MessageAuthenticator::new(
                    ResolverConfig::from_parts(None, vec![], vec![]),
                    ResolverOpts::default(),
                ),
            }
            .map_err(|e| VerifyError::Resolver(e.to_string()))?
        };
        Ok(Some(Verifier {
            auth,
            records,
            host: host.to_string(),
            rt,
        }))
    }

    /// The verdicts on `raw`, received over `conn`. Runs on its own
    /// runtime: call from a blocking thread (the inbound worker's, or a
    /// command), never from async code.
    pub fn verify(&self, raw: &[u8], conn: &Connection) -> Option<Verdicts> {
        let msg = AuthenticatedMessage::parse(raw)?;
        let from_domain = msg
            .from
            .first()
            .and_then(|f| f.rsplit_once('@'))
            .map(|(_, d)| d.to_ascii_lowercase())
            .unwrap_or_default();
        Some(self.rt.block_on(self.verify_async(&msg, from_domain, conn)))
    }

    async fn verify_async(
        &self,
        msg: &AuthenticatedMessage<'_>,
        from_domain: String,
        conn: &Connection,
    ) -> Verdicts {
        let dkim = self
            .auth
            .verify_dkim(Parameters::new(msg).with_txt_cache(&self.records))
            .await;
        let mail_from = conn
            .mail_from
            .clone()
            .unwrap_or_else(|| format!("postmaster@{}", conn.helo.as_deref().unwrap_or("")));
        let mail_from_domain = mail_from
            .rsplit_once('@')
            .map_or("", |(_, d)| d)
            .to_string();
        let spf = match (conn.ip, conn.helo.as_deref()) {
            (Some(ip), Some(helo)) => {
                self.auth
                    .verify_spf(
                        Parameters::new(SpfParameters::verify_mail_from(
                            ip, helo, &self.host, &mail_from,
                        ))
                        .with_txt_cache(&self.records),
                    )
                    .await
            }
            _ => SpfOutput::new(mail_from_domain.clone()),
        };
        let dmarc = self
            .auth
            .verify_dmarc(
                Parameters::new(DmarcParameters::new(msg, &dkim, &mail_from_domain, &spf))
                    .with_txt_cache(&self.records),
            )
            .await;
        // mail-auth's overall result: the best mechanism, else `fail` when
        // the domain publishes a policy, else `none`.
        let dmarc_verdict = match dmarc.result() {
            DmarcResult::Pass => "pass",
            DmarcResult::Fail(_) => "fail",
            DmarcResult::TempError(_) => "temperror",
            DmarcResult::PermError(_) => "permerror",
            DmarcResult::None => "none",
        };
        Verdicts {
            dkim: dkim
                .iter()
                .map(|d| DkimVerdict {
                    domain: d
                        .signature()
                        .map(|s| s.d.to_ascii_lowercase())
                        .unwrap_or_default(),
                    result: dkim_word(d.result()).into(),
                })
                .collect(),
            spf: conn.ip.map(|_| DomainVerdict {
                domain: spf.domain().to_string(),
                result: spf_word(spf.result()).into(),
            }),
            dmarc: Some(DomainVerdict {
                domain: from_domain.clone(),
                result: dmarc_verdict.into(),
            }),
            from_domain,
        }
    }
}

fn dkim_word(r: &DkimResult) -> &'static str {
    match r {
        DkimResult::Pass => "pass",
        DkimResult::Neutral(_) => "neutral",
        DkimResult::Fail(_) => "fail",
        DkimResult::PermError(_) => "permerror",
        DkimResult::TempError(_) => "temperror",
        DkimResult::None => "none",
    }
}

fn spf_word(r: SpfResult) -> &'static str {
    match r {
        SpfResult::Pass => "pass",
        SpfResult::Fail => "fail",
        SpfResult::SoftFail => "softfail",
        SpfResult::Neutral => "neutral",
        SpfResult::TempError => "temperror",
        SpfResult::PermError => "permerror",
        SpfResult::None => "none",
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use mail_auth::common::crypto::Ed25519Key;
    use mail_auth::common::headers::HeaderWriter;
    use mail_auth::dkim::DkimSigner;

    /// Standard base64 (the DKIM key record's `p=`).
    fn base64(bytes: &[u8]) -> String {
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for c in bytes.chunks(3) {
            let n = (u32::from(c[0]) << 16)
                | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
                | u32::from(*c.get(2).unwrap_or(&0));
            for i in 0..4 {
                if i <= c.len() {
                    out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    /// A DKIM key for `domain` (selector `s1`): the signing key and the TXT
    /// record publishing it.
    pub(crate) fn dkim_key(domain: &str) -> (Vec<u8>, String, String) {
        let pkcs8 = Ed25519Key::generate_pkcs8().unwrap();
        let key = Ed25519Key::from_pkcs8_der(&pkcs8).unwrap();
        let p = base64(&key.public_key());
        (
            pkcs8,
            format!("s1._domainkey.{domain}"),
            format!("v=DKIM1; k=ed25519; p={p}"),
        )
    }

    /// `raw` signed by `domain` with `pkcs8`.
    pub(crate) fn sign(pkcs8: &[u8], domain: &str, raw: &str) -> String {
        let key = Ed25519Key::from_pkcs8_der(pkcs8).unwrap();
        let sig = DkimSigner::from_key(key)
            .domain(domain)
            .selector("s1")
            .headers(["From", "To", "Subject", "Message-ID", "In-Reply-To"])
            .sign(raw.as_bytes())
            .unwrap();
        format!("{}{raw}", sig.to_header())
    }

    fn mail(from: &str) -> String {
        format!(
            "Received: from mx.cisco.example (mx.cisco.example [192.0.2.10])\r\n\tby mail.edesk.example.com (Postfix) with ESMTPS id X1\r\nFrom: {from}\r\nTo: support@edesk.example.com\r\nSubject: Re: T-000001\r\nMessage-ID: <r1@cisco.example>\r\n\r\nReleased.\r\n"
        )
    }

    fn verifier(records: &[(&str, &str)]) -> Verifier {
        let r = Records::default();
        for (n, v) in records {
            r.add(n, v).unwrap();
        }
        Verifier::new(VerifyMode::Records, r, "mail.edesk.example.com")
            .unwrap()
            .unwrap()
    }

    #[test]
    fn a_signature_by_the_from_domain_passes_and_aligns() {
        let (k, name, txt) = dkim_key("cisco.example");
        let v = verifier(&[
            (&name, &txt),
            ("_dmarc.cisco.example", "v=DMARC1; p=reject"),
            ("cisco.example", "v=spf1 ip4:192.0.2.0/24 -all"),
        ]);
        let raw = sign(&k, "cisco.example", &mail("exportops@cisco.example"));
        let conn = Connection::from_received(raw.as_bytes(), Some("exportops@cisco.example"));
        assert_eq!(conn.ip, Some("192.0.2.10".parse().unwrap()));
        let got = v.verify(raw.as_bytes(), &conn).unwrap();
        assert_eq!(got.dkim[0].result, "pass", "{got:?}");
        assert_eq!(got.spf.as_ref().unwrap().result, "pass", "{got:?}");
        assert_eq!(got.dmarc.as_ref().unwrap().result, "pass", "{got:?}");
        assert_eq!(got.aligned_pass(), Some("cisco.example"));
    }

    #[test]
    fn forged_tampered_or_unknown_signatures_never_align() {
        let (k, name, txt) = dkim_key("evil.example");
        let v = verifier(&[
            (&name, &txt),
            ("_dmarc.cisco.example", "v=DMARC1; p=reject"),
            ("cisco.example", "v=spf1 ip4:198.51.100.0/24 -all"),
        ]);
        // Signed by the forger's own domain, From the team's.
        let raw = sign(&k, "evil.example", &mail("exportops@cisco.example"));
        let conn = Connection::from_received(raw.as_bytes(), Some("exportops@cisco.example"));
        let got = v.verify(raw.as_bytes(), &conn).unwrap();
        assert_eq!(got.dkim[0].result, "pass", "valid, but not aligned");
        assert_eq!(got.spf.as_ref().unwrap().result, "fail");
        assert_eq!(got.dmarc.as_ref().unwrap().result, "fail");
        assert_eq!(got.aligned_pass(), None);
        // Tampered after signing.
        let (k2, name2, txt2) = dkim_key("cisco.example");
        let v2 = verifier(&[(&name2, &txt2)]);
        let raw = sign(&k2, "cisco.example", &mail("exportops@cisco.example"))
            .replace("Released.", "Log in at evil.example.");
        let got = v2.verify(raw.as_bytes(), &Connection::default()).unwrap();
        // A body hash mismatch is `neutral` (RFC 6376 §6.3): never a pass.
        assert_ne!(got.dkim[0].result, "pass", "{got:?}");
        assert_eq!(got.aligned_pass(), None);
        // No key in the records (the whole zone in `records` mode): no pass.
        let v3 = verifier(&[]);
        let raw = sign(&k2, "cisco.example", &mail("exportops@cisco.example"));
        let got = v3.verify(raw.as_bytes(), &Connection::default()).unwrap();
        assert_eq!(got.dkim[0].result, "permerror", "{got:?}");
        assert_eq!(got.aligned_pass(), None);
    }

    #[test]
    fn a_records_file_is_read_with_zone_file_quoting() {
        let (_, name, txt) = dkim_key("cisco.example");
        let text = format!(
            "# team keys\n{name} \"{}\" \"{}\"\n_dmarc.cisco.example v=DMARC1; p=none\ncisco.example \"v=spf1 -all\"\n",
            &txt[..10],
            &txt[10..]
        );
        let r = Records::parse("records.txt", &text).unwrap();
        assert!(r.get(&*format!("{name}.")).is_some());
        assert!(r.get("_dmarc.cisco.example.").is_some());
        let err = Records::parse("records.txt", "www.example.com hello\n")
            .err()
            .unwrap();
        assert!(err.to_string().contains("line 1"), "{err}");
    }
}
