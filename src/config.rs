//! Configuration: built-in defaults → TOML file (`--config`) → `EDESK_*`
//! environment → command-line flags, merged by `figment`, which keeps the
//! origin of every value. The merged result is checked against one schema
//! (`deny_unknown_fields` everywhere), so an unknown key or a bad value is an
//! error that names the key and where it came from (file path or
//! environment variable); `validate` then checks what types cannot say.
#![warn(missing_docs)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::error::Kind;
use figment::providers::{Format, Serialized, Toml};
use figment::value::{Dict, Map};
use figment::{Figment, Metadata, Profile, Provider, Source};
use serde::{Deserialize, Serialize};

/// The file in the data directory where `serve` writes the address its HTTP
/// API is bound to (the configured one may say port 0); the command line
/// reads it to find a running daemon.
pub const HTTP_ADDR_FILE: &str = "http.addr";

/// File in `data_dir` holding the address the running daemon's LMTP intake is
/// bound to, for scripts and tests that configure port 0.
pub const LMTP_ADDR_FILE: &str = "lmtp.addr";

/// Prefix of every environment variable edesk reads as configuration.
pub const ENV_PREFIX: &str = "EDESK_";

/// Environment variables with the prefix that are not configuration keys
/// (they select the file, or are read by clap directly).
const ENV_NOT_KEYS: &[&str] = &["EDESK_CONFIG", "EDESK_LOG"];

/// The effective configuration: one section per TOML table (`[http]`, `[jobs]`, …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// sled database, tantivy index, raw mail, outgoing `.eml` files.
    pub data_dir: PathBuf,
    /// `[http]`.
    pub http: HttpConfig,
    /// `[lmtp]`.
    pub lmtp: LmtpConfig,
    /// `[inbound]`.
    pub inbound: InboundConfig,
    /// `[smtp]`.
    pub smtp: SmtpConfig,
    /// `[mail]`.
    pub mail: MailConfig,
    /// `[faq]`.
    pub faq: FaqConfig,
    /// `[discord]`.
    pub discord: DiscordConfig,
    /// `[chat]`.
    pub chat: ChatConfig,
    /// `[calendar]`.
    pub calendar: CalendarConfig,
    /// `[outbox]`.
    pub outbox: OutboxConfig,
    /// `[desk]`.
    pub desk: DeskConfig,
    /// `[shutdown]`.
    pub shutdown: ShutdownConfig,
    /// `[store]`.
    pub store: StoreConfig,
    /// `[jobs]`.
    pub jobs: JobsConfig,
}

/// `[store]`: which engine holds the state, and its limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// sled's page cache in MiB (sled's own default, 1 GiB, is what made a
    /// large store cost gigabytes of memory).
    pub cache_mb: u64,
    /// Below this many MiB free in the data directory, intake refuses new
    /// mail (LMTP 452, HTTP 507) and `/readyz` is not ready, before the disk
    /// is actually full.
    pub min_free_mb: u64,
    /// `sled` (embedded, under the data directory), `redb` (embedded, one
    /// file in the data directory) or `postgres` (a database several
    /// daemons share, at `store.url`).
    pub backend: StoreBackend,
    /// `postgres://user[:password]@host[:port]/database[?options]`, for the
    /// `postgres` backend.
    pub url: Option<String>,
}

/// Which engine holds the daemon's state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    /// sled, embedded, under the data directory (the default); one process at a time.
    #[default]
    Sled,
    /// redb, embedded, one file (`store.redb`) in the data directory; one process at a time.
    Redb,
    /// PostgreSQL at `store.url`, which several daemons can share.
    Postgres,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            cache_mb: 64,
            min_free_mb: 16,
            backend: StoreBackend::Sled,
            url: None,
        }
    }
}

impl StoreConfig {
    /// What the store opens with: the cache and free-space floor in bytes, and the
    /// backend (sled unless `postgres` with a URL, which `validate` requires).
    pub fn engine_settings(&self) -> crate::store::EngineSettings {
        let backend = match (self.backend, &self.url) {
            (StoreBackend::Postgres, Some(url)) => {
                crate::store::Backend::Postgres { url: url.clone() }
            }
            (StoreBackend::Redb, _) => crate::store::Backend::Redb,
            _ => crate::store::Backend::Sled,
        };
        crate::store::EngineSettings {
            cache_bytes: self.cache_mb.saturating_mul(1 << 20),
            min_free_bytes: self.min_free_mb.saturating_mul(1 << 20),
            backend,
        }
    }

    /// `store.url` is required by, and only by, the `postgres` backend.
    fn check(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: &str| ConfigError::Invalid {
            key: key.into(),
            message: message.into(),
        };
        match (self.backend, self.url.as_deref()) {
            (StoreBackend::Postgres, None) => Err(invalid(
                "store.url",
                "is required with store.backend = \"postgres\" (postgres://user@host/database)",
            )),
            (StoreBackend::Postgres, Some(u))
                if !(u.starts_with("postgres://") || u.starts_with("postgresql://")) =>
            {
                Err(invalid(
                    "store.url",
                    "must be a postgres:// or postgresql:// URL",
                ))
            }
            (StoreBackend::Sled | StoreBackend::Redb, Some(_)) => Err(invalid(
                "store.url",
                "is only read with store.backend = \"postgres\"; set the backend or remove the URL",
            )),
            _ => Ok(()),
        }
    }
}

/// The scheduled jobs (`src/jobs`): when each runs and the numbers they use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobsConfig {
    /// Run the scheduler inside `edesk serve` (`jobs run NAME --now` works
    /// either way).
    pub enabled: bool,
    /// A cron expression per job (`sec min hour day-of-month month
    /// day-of-week [year]`, in `calendar.time_zone`), or `off`.
    pub schedule: JobSchedules,
    /// First PAK reminder this many days after the order became available.
    pub pak_reminder_after_days: u32,
    /// Then again every this many days…
    pub pak_reminder_every_days: u32,
    /// …at most this many reminders in all.
    pub pak_reminder_max: u32,
    /// Warn recipients this many days before day 90 (the end of the
    /// second-download window).
    pub download_window_warn_days: u32,
    /// Remind a ticket's team this many hours before the ticket is due (the
    /// end of its due business day in `calendar.time_zone`).
    pub sla_remind_before_hours: u32,
    /// Also mail the overdue escalation here (a supervisor), besides the team.
    pub sla_escalate_to: Option<String>,
    /// Notification history and job runs are purged after this many days
    /// (raw inbound mail follows `inbound.retention_days`).
    pub history_retention_days: u32,
}

/// One cron expression per built-in job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobSchedules {
    /// `archive` (default: daily at 02:00).
    pub archive: String,
    /// `release-held` (default: hourly).
    #[serde(rename = "release-held")]
    pub release_held: String,
    /// `pak-reminder` (default: 09:00 on weekdays).
    #[serde(rename = "pak-reminder")]
    pub pak_reminder: String,
    /// `download-window` (default: daily at 09:30).
    #[serde(rename = "download-window")]
    pub download_window: String,
    /// `sla` (default: every 15 minutes).
    pub sla: String,
    /// `retention` (default: daily at 03:30).
    pub retention: String,
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig {
            enabled: true,
            schedule: JobSchedules::default(),
            pak_reminder_after_days: 14,
            pak_reminder_every_days: 14,
            pak_reminder_max: 3,
            download_window_warn_days: 10,
            sla_remind_before_hours: 4,
            sla_escalate_to: None,
            history_retention_days: 730,
        }
    }
}

impl Default for JobSchedules {
    fn default() -> Self {
        JobSchedules {
            archive: "0 0 2 * * *".into(),
            release_held: "0 0 * * * *".into(),
            pak_reminder: "0 0 9 * * Mon-Fri".into(),
            download_window: "0 30 9 * * *".into(),
            sla: "0 */15 * * * *".into(),
            retention: "0 30 3 * * *".into(),
        }
    }
}

impl JobSchedules {
    /// (job name, expression) for every built-in job.
    pub fn entries(&self) -> [(&'static str, &str); 6] {
        [
            ("archive", &self.archive),
            ("release-held", &self.release_held),
            ("pak-reminder", &self.pak_reminder),
            ("download-window", &self.download_window),
            ("sla", &self.sla),
            ("retention", &self.retention),
        ]
    }
}

/// `[shutdown]`: how long a stop may take.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShutdownConfig {
    /// After SIGTERM/SIGINT, connections and services get this long (ms) to
    /// finish; whatever is still running then is abandoned and the process
    /// exits, so a stalled client can never hold the daemon up.
    pub grace_ms: u64,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        ShutdownConfig { grace_ms: 10_000 }
    }
}

/// `[outbox]`: delivery retries and throttling of outgoing mail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboxConfig {
    /// Delivery attempts before a temporarily failing mail goes to `dead`.
    pub max_attempts: u32,
    /// First retry delay in milliseconds; doubles per attempt, with jitter.
    pub backoff_base_ms: u64,
    /// Longest retry delay in milliseconds.
    pub backoff_max_ms: u64,
    /// Parallel SMTP sessions per recipient domain.
    pub per_domain_concurrency: usize,
    /// Global cap on messages per second (0 = no cap).
    pub rate_per_sec: u32,
    /// With a shared store (PostgreSQL), how long a daemon's claim on the
    /// mail it is sending lasts: if it dies, another daemon sends that mail
    /// after this. Longer than one sending pass takes.
    pub claim_lease_secs: u64,
}

/// `[desk]`: the support desk's teams and its loop breaker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeskConfig {
    /// At most this many automatic mails (answers, acknowledgements) to one
    /// address per hour: the loop breaker against autoresponders.
    pub auto_mail_per_hour: usize,
    /// Treat a sender from the same (non-public) mail domain as an order's
    /// recipient as authorized (Account-Based Access by company domain).
    pub company_domains: bool,
    /// Where each team's escalations are mailed, and whose replies to a
    /// ticket are relayed to the customer. Defaults from the FAQ's contacts.
    pub teams: BTreeMap<String, String>,
}

impl Default for DeskConfig {
    fn default() -> Self {
        let teams = [
            ("edelivery-support", "edelivery-customer-support@cisco.com"),
            ("exportops", "exportops@cisco.com"),
            ("sac-support", "sac-support@cisco.com"),
            ("licensing", "licensing@cisco.com"),
            ("ucss", "ucss-support@external.cisco.com"),
            ("cuwl", "cuwl-support@external.cisco.com"),
            // The source document gives Customer Service a web form and a
            // phone number, no address: set one to mail its escalations.
            ("customer-service", ""),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        DeskConfig {
            auto_mail_per_hour: 5,
            company_domains: false,
            teams,
        }
    }
}

impl Default for OutboxConfig {
    fn default() -> Self {
        OutboxConfig {
            max_attempts: 8,
            claim_lease_secs: 300,
            backoff_base_ms: 30_000,
            backoff_max_ms: 3_600_000,
            per_domain_concurrency: 4,
            rate_per_sec: 0,
        }
    }
}

/// `[http]`: the HTTP API's address, links and limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address the API listens on (default `127.0.0.1:7070`; port 0 picks one, written to
    /// [`HTTP_ADDR_FILE`]).
    pub bind: SocketAddr,
    /// Base of every link edesk puts in a mail (unsubscribe, order pages).
    pub public_url: String,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// A client must send a request's line and headers within this many ms
    /// (slowloris guard; also closes connections that send nothing).
    pub header_timeout_ms: u64,
    /// A whole request (body and handler) must complete within this many ms,
    /// else `408` with a JSON body.
    pub request_timeout_ms: u64,
    /// Open connections served at once; a connection beyond it is answered
    /// `503` and closed at once.
    pub max_connections: usize,
}

/// `[lmtp]`: the LMTP intake's address and limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LmtpConfig {
    /// Address the LMTP server listens on (default `127.0.0.1:2424`).
    pub bind: SocketAddr,
    /// Largest message accepted, in bytes (`552` above it).
    pub max_message_bytes: usize,
    /// Sessions served at once; one more is answered `421 4.7.0` and closed.
    pub max_connections: usize,
    /// A session silent for this many ms is answered `421 4.4.2` and closed.
    pub idle_timeout_ms: u64,
}

/// `[inbound]`: the Maildir intake and inbound mail authentication.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InboundConfig {
    /// Maildir polled for messages (`edesk mail deliver` writes there).
    /// Unset: `DATA_DIR/maildir`.
    pub maildir: Option<PathBuf>,
    /// How often the Maildir is polled, in milliseconds.
    pub poll_ms: u64,
    /// Raw bytes of processed mail are purged after this many days.
    pub retention_days: u32,
    /// The calibrated FAQ confidence a mail needs to be answered from the FAQ
    /// (below it, a person gets a ticket). Higher than `faq.threshold`: a
    /// wrong answer by mail costs a customer a round trip, where chat shows
    /// alternatives at once.
    pub faq_threshold: f64,
    /// DKIM/SPF/DMARC verification of inbound mail (`off`, `dns`, `records`).
    pub verify_auth: VerifyMode,
    /// DNS TXT records (DKIM keys, SPF and DMARC policies) answered without
    /// asking DNS: `NAME VALUE` lines (see `inbound::verify::Records`).
    pub auth_records: Option<PathBuf>,
}

/// Where DKIM/SPF/DMARC verification gets its DNS answers
/// (`inbound.verify_auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerifyMode {
    /// No verification: commands and team replies rely on the other proofs.
    #[default]
    Off,
    /// `inbound.auth_records` first, then the system's DNS resolver.
    Dns,
    /// Only `inbound.auth_records` (no DNS query is ever sent).
    Records,
}

/// Where outgoing mail goes, from `smtp.url` (`smtp://host[:port]`,
/// `smtps://host[:port]` for TLS from the first byte).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpEndpoint {
    /// Host as written (IPv6 in brackets), for connecting.
    pub host: String,
    /// Port as written, else 465 for `smtps://` and 25 for `smtp://`.
    pub port: u16,
    /// `smtps://`: implicit TLS.
    pub tls: bool,
}

impl SmtpEndpoint {
    /// Parses `smtp.url`. Only `smtp[s]://host[:port]` is accepted: no credentials, path
    /// or query; the error is a message for the operator.
    pub fn parse(s: &str) -> Result<SmtpEndpoint, String> {
        let url = url::Url::parse(s).map_err(|e| format!("{s:?} is not a URL: {e}"))?;
        let tls = match url.scheme() {
            "smtp" => false,
            "smtps" => true,
            other => {
                return Err(format!(
                    "{s:?}: scheme {other:?}, expected smtp:// or smtps://"
                ));
            }
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!(
                "{s:?}: SMTP authentication is not supported; relay through a local MTA"
            ));
        }
        if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
            return Err(format!("{s:?}: only smtp[s]://host[:port] is understood"));
        }
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| format!("{s:?} names no host"))?
            .to_string();
        let port = url.port().unwrap_or(if tls { 465 } else { 25 });
        Ok(SmtpEndpoint { host, port, tls })
    }

    /// `host:port` for connecting.
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// The name the server's TLS certificate must carry.
    pub fn tls_name(&self) -> String {
        self.host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string()
    }
}

/// `[smtp]`: the relay outgoing mail is handed to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpConfig {
    /// `smtp://host:port`; unset means outgoing mail is written as `.eml` files.
    pub url: Option<String>,
    /// A pooled connection unused this long is closed by us before it is
    /// used again. Keep it below the relay's own idle limit (Postfix
    /// `smtpd_timeout`, 300 s), so we never write into a connection the
    /// server has already given up on.
    pub idle_timeout_ms: u64,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            url: None,
            idle_timeout_ms: 60_000,
        }
    }
}

/// `[mail]`: the identity outgoing mail is sent under.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailConfig {
    /// Own domain: Message-IDs, `reply+TOKEN@`, `bounces+TOKEN@`.
    pub domain: String,
    /// Display name and local part of the sender of notifications.
    pub from_name: String,
    /// Local part of the sender address (`from_local@domain`).
    pub from_local: String,
}

/// `[faq]`: where the FAQ comes from and when the engine answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FaqConfig {
    /// Directory holding the FAQ sources (`faq-index/`). Unset: `./faq-index`
    /// when it exists, else the copy built into the binary.
    pub dir: Option<PathBuf>,
    /// Below this confidence the engine abstains.
    pub threshold: f64,
}

/// `[discord]`: the Discord bot; it runs only when a token is set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct DiscordConfig {
    /// File whose first line is the bot token; read when `token` is unset.
    pub token_file: Option<PathBuf>,
    /// The bot token; only from the environment (`EDESK_DISCORD__TOKEN`), a token in the
    /// configuration file is refused.
    pub token: Option<String>,
    /// Base URL of Discord's REST API (a proxy, or a test's fake Discord);
    /// unset: discord.com. The gateway URL is what `GET /gateway/bot` answers.
    pub api_url: Option<String>,
}

impl DiscordConfig {
    /// The bot token: `discord.token`, else the first line of
    /// `discord.token_file`; `None` means the bot is off.
    pub fn resolve_token(&self) -> Result<Option<String>, ConfigError> {
        if let Some(t) = self
            .token
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            return Ok(Some(t.to_string()));
        }
        let Some(path) = &self.token_file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Invalid {
            key: "discord.token_file".into(),
            message: format!("{}: {e}", path.display()),
        })?;
        Ok(text
            .lines()
            .next()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string))
    }
}

/// Chat: bot definitions and account linking.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChatConfig {
    /// Directory of the bot definitions (`discord.toml`, `console.toml`,
    /// `web.toml`). Unset: `./bots` when present, else the built-in copies.
    pub bots_dir: Option<PathBuf>,
    /// How long a mailed link code is valid, in seconds.
    pub link_code_ttl_secs: u64,
    /// Wrong codes accepted before the code is void.
    pub link_max_tries: u32,
}

impl Default for ChatConfig {
    fn default() -> Self {
        ChatConfig {
            bots_dir: None,
            link_code_ttl_secs: 900,
            link_max_tries: 5,
        }
    }
}

/// `[calendar]`: the business calendar SLAs and job dates use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CalendarConfig {
    /// IANA zone business days and due dates are counted in (`Europe/Paris`).
    pub time_zone: String,
    /// Public holidays, which are not business days: one `YYYY-MM-DD` a line, `#`
    /// comments. Unset: only weekends are skipped.
    pub holidays_file: Option<PathBuf>,
}

impl CalendarConfig {
    /// The zone; `validate` has already refused names that do not parse.
    pub fn tz(&self) -> chrono_tz::Tz {
        self.time_zone.parse().unwrap_or(chrono_tz::Tz::UTC)
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./data"),
            http: HttpConfig::default(),
            lmtp: LmtpConfig::default(),
            desk: DeskConfig::default(),
            inbound: InboundConfig::default(),
            smtp: SmtpConfig::default(),
            mail: MailConfig::default(),
            faq: FaqConfig::default(),
            discord: DiscordConfig::default(),
            chat: ChatConfig::default(),
            calendar: CalendarConfig::default(),
            outbox: OutboxConfig::default(),
            shutdown: ShutdownConfig::default(),
            store: StoreConfig::default(),
            jobs: JobsConfig::default(),
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 7070)),
            public_url: "http://127.0.0.1:7070".into(),
            max_body_bytes: 1024 * 1024,
            header_timeout_ms: 10_000,
            request_timeout_ms: 30_000,
            max_connections: 1024,
        }
    }
}

impl Default for LmtpConfig {
    fn default() -> Self {
        LmtpConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 2424)),
            max_message_bytes: 25 * 1024 * 1024,
            max_connections: 64,
            idle_timeout_ms: 300_000,
        }
    }
}

impl Default for InboundConfig {
    fn default() -> Self {
        InboundConfig {
            maildir: None,
            poll_ms: 2000,
            retention_days: 90,
            faq_threshold: 0.7,
            verify_auth: VerifyMode::Off,
            auth_records: None,
        }
    }
}

impl Default for MailConfig {
    fn default() -> Self {
        MailConfig {
            domain: "edesk.example.com".into(),
            from_name: "eDelivery".into(),
            from_local: "edelivery".into(),
        }
    }
}

impl Default for FaqConfig {
    fn default() -> Self {
        FaqConfig {
            dir: None,
            threshold: 0.5,
        }
    }
}

impl Default for CalendarConfig {
    fn default() -> Self {
        CalendarConfig {
            time_zone: "UTC".into(),
            holidays_file: None,
        }
    }
}

/// Why the configuration could not be loaded; the message names the key and the layer
/// (file or variable) the bad value came from.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The `--config` file could not be read (missing, unreadable).
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file named by `--config` / `EDESK_CONFIG`.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A value in the TOML file is wrong (syntax, unknown key, type, or a secret in the file).
    #[error("config file {path}: {message}")]
    File {
        /// The file the value came from.
        path: PathBuf,
        /// What is wrong, with the key.
        message: String,
    },
    /// An `EDESK_*` variable is wrong (unknown key or bad value).
    #[error("environment variable {var}: {message}")]
    Env {
        /// The variable's name.
        var: String,
        /// What is wrong.
        message: String,
    },
    /// A value breaks a rule (range, format, a combination of keys), or a file it names
    /// cannot be read.
    #[error("invalid value for `{key}`: {message}")]
    Invalid {
        /// The dotted key, e.g. `store.url`.
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// Command-line overrides, the last layer.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--data-dir`; `None` leaves `data_dir` to the other layers.
    pub data_dir: Option<PathBuf>,
}

impl Config {
    /// Loads the effective configuration from all layers: the built-in
    /// defaults, the TOML file, the `EDESK_*` variables of `env`, then the
    /// flags. figment merges them and remembers which layer gave each value,
    /// so an error names the key and the file or variable it came from.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: &Overrides,
    ) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            // figment reads a missing file as an empty one; a file the
            // operator named must exist.
            std::fs::metadata(path).map_err(|source| ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            figment = figment.merge(Toml::file_exact(path));
        }
        let mut vars: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX) && !ENV_NOT_KEYS.contains(&k.as_str()))
            .collect();
        vars.sort();
        for (var, raw) in vars {
            let key = env_key(&figment, &var);
            figment = figment.merge(EnvVar { var, key, raw });
        }
        if let Some(dir) = &overrides.data_dir {
            figment = figment.merge(Serialized::default("data_dir", dir));
        }
        let config: Config = figment.extract().map_err(config_error)?;
        config
            .validate()
            .and_then(|()| token_not_in_a_file(&figment))
            .map_err(|e| with_origin(&figment, e))?;
        Ok(config)
    }

    /// Checks the merged layers; the first bad key is the error, in the
    /// order the steps run (operators fix one key at a time).
    fn validate(&self) -> Result<(), ConfigError> {
        self.store.check()?;
        self.validate_chat()?;
        self.validate_faq()?;
        self.validate_mail_identity()?;
        self.validate_smtp()?;
        self.validate_calendar()?;
        self.validate_desk()?;
        self.validate_intake_and_outbox()?;
        self.validate_jobs()?;
        self.validate_listener_limits()
    }

    fn validate_chat(&self) -> Result<(), ConfigError> {
        if self.chat.link_code_ttl_secs == 0 {
            return invalid(
                "chat.link_code_ttl_secs",
                "must be > 0 (how long a mailed link code is valid)".into(),
            );
        }
        if self.chat.link_max_tries == 0 {
            return invalid(
                "chat.link_max_tries",
                "must be > 0 (wrong codes allowed before a link code is void)".into(),
            );
        }
        if let Some(url) = &self.discord.api_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return invalid("discord.api_url", format!("{url:?} is not an http(s) URL"));
        }
        Ok(())
    }

    fn validate_faq(&self) -> Result<(), ConfigError> {
        if !(0.0..=1.0).contains(&self.inbound.faq_threshold) {
            return invalid(
                "inbound.faq_threshold",
                format!("{} is not in [0, 1]", self.inbound.faq_threshold),
            );
        }
        if !(0.0..=1.0).contains(&self.faq.threshold) {
            return invalid(
                "faq.threshold",
                format!("{} is not in [0, 1]", self.faq.threshold),
            );
        }
        Ok(())
    }

    /// The mail domain and the public URL end up in every mail we send
    /// (Message-IDs, reply addresses, links), so both are checked together.
    fn validate_mail_identity(&self) -> Result<(), ConfigError> {
        if self.mail.domain.is_empty()
            || self.mail.domain.len() > 253
            || !self
                .mail
                .domain
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        {
            return invalid(
                "mail.domain",
                format!("{:?} is not a domain name", self.mail.domain),
            );
        }
        // Links go into headers (List-Unsubscribe) as one unbreakable
        // word: the bound keeps that line well under RFC 5322's 998.
        if self.http.public_url.len() > 512 {
            return invalid(
                "http.public_url",
                "longer than 512 characters (it goes into mail headers)".into(),
            );
        }
        if !(self.http.public_url.starts_with("http://")
            || self.http.public_url.starts_with("https://"))
        {
            return invalid(
                "http.public_url",
                format!("{:?} is not an http(s) URL", self.http.public_url),
            );
        }
        Ok(())
    }

    fn validate_smtp(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.smtp.url
            && let Err(e) = SmtpEndpoint::parse(url)
        {
            return invalid("smtp.url", e);
        }
        if self.smtp.idle_timeout_ms == 0 {
            return invalid(
                "smtp.idle_timeout_ms",
                "must be > 0 (how long an unused SMTP connection is kept)".into(),
            );
        }
        Ok(())
    }

    fn validate_calendar(&self) -> Result<(), ConfigError> {
        if self.calendar.time_zone.parse::<chrono_tz::Tz>().is_err() {
            return invalid(
                "calendar.time_zone",
                format!(
                    "{:?} is not an IANA time zone (e.g. UTC, Europe/Paris)",
                    self.calendar.time_zone
                ),
            );
        }
        Ok(())
    }

    fn validate_desk(&self) -> Result<(), ConfigError> {
        if self.desk.auto_mail_per_hour == 0 {
            return invalid(
                "desk.auto_mail_per_hour",
                "must be > 0 (automatic answers need at least one mail per hour)".into(),
            );
        }
        for (team, addr) in &self.desk.teams {
            if let Err(e) = team.parse::<crate::domain::Team>() {
                return invalid(&format!("desk.teams.{team}"), e);
            }
            if !addr.is_empty() && addr.parse::<crate::domain::EmailAddress>().is_err() {
                return invalid(
                    &format!("desk.teams.{team}"),
                    format!("{addr:?} is not a mail address"),
                );
            }
        }
        Ok(())
    }

    fn validate_intake_and_outbox(&self) -> Result<(), ConfigError> {
        if self.inbound.poll_ms == 0 {
            return invalid("inbound.poll_ms", "must be > 0".into());
        }
        if self.outbox.max_attempts == 0 {
            return invalid("outbox.max_attempts", "must be > 0".into());
        }
        if self.outbox.per_domain_concurrency == 0 {
            return invalid("outbox.per_domain_concurrency", "must be > 0".into());
        }
        Ok(())
    }

    fn validate_jobs(&self) -> Result<(), ConfigError> {
        for (job, expr) in self.jobs.schedule.entries() {
            if let Err(e) = check_cron(expr) {
                return invalid(&format!("jobs.schedule.{job}"), e);
            }
        }
        if let Some(a) = &self.jobs.sla_escalate_to
            && a.parse::<crate::domain::EmailAddress>().is_err()
        {
            return invalid(
                "jobs.sla_escalate_to",
                format!("{a:?} is not a mail address"),
            );
        }
        all_positive([
            (
                "jobs.pak_reminder_every_days",
                self.jobs.pak_reminder_every_days,
            ),
            (
                "jobs.history_retention_days",
                self.jobs.history_retention_days,
            ),
        ])
    }

    fn validate_listener_limits(&self) -> Result<(), ConfigError> {
        all_positive([
            ("http.max_body_bytes", self.http.max_body_bytes as u64),
            ("http.header_timeout_ms", self.http.header_timeout_ms),
            ("http.request_timeout_ms", self.http.request_timeout_ms),
            ("http.max_connections", self.http.max_connections as u64),
            ("lmtp.max_connections", self.lmtp.max_connections as u64),
            ("lmtp.idle_timeout_ms", self.lmtp.idle_timeout_ms),
        ])
    }

    /// The Maildir the daemon polls and `edesk mail deliver` writes to.
    pub fn maildir(&self) -> PathBuf {
        self.inbound
            .maildir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("maildir"))
    }

    /// The effective configuration as TOML (what `edesk config check` prints).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot print: {e}\n"))
    }
}

fn invalid(key: &str, message: String) -> Result<(), ConfigError> {
    Err(ConfigError::Invalid {
        key: key.into(),
        message,
    })
}

/// Counts, sizes and timeouts where 0 would stall or refuse everything.
fn all_positive<const N: usize, T>(values: [(&str, T); N]) -> Result<(), ConfigError>
where
    T: Into<u64>,
{
    for (key, value) in values {
        if value.into() == 0 {
            return invalid(key, "must be > 0".into());
        }
    }
    Ok(())
}

/// Checks a job schedule: `off`, or a cron expression the `cron` crate
/// accepts, with its seconds field (a 5-field Unix line is refused with a
/// hint rather than read with shifted fields).
pub fn check_cron(expr: &str) -> Result<(), String> {
    let e = expr.trim();
    if e.eq_ignore_ascii_case("off") {
        return Ok(());
    }
    if !e.starts_with('@') && e.split_whitespace().count() == 5 {
        return Err(format!(
            "{expr:?} has 5 fields; edesk's cron has a seconds field first: \"0 {e}\""
        ));
    }
    e.parse::<cron::Schedule>()
        .map(|_| ())
        .map_err(|err| format!("{expr:?} is not a cron expression: {err}"))
}

/// One `EDESK_*` variable as a figment layer of its own, so that a value
/// it sets (or a key it names that does not exist) is reported with the
/// variable's name.
struct EnvVar {
    var: String,
    /// The dotted key it sets (`http.bind`).
    key: String,
    raw: String,
}

/// Marks an environment layer in figment's metadata.
const ENV_SOURCE: &str = "environment";

impl Provider for EnvVar {
    fn metadata(&self) -> Metadata {
        Metadata::named(self.var.clone()).source(Source::Custom(ENV_SOURCE.into()))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Serialized::default(&self.key, env_value(&self.raw)).data()
    }
}

/// An environment value is a TOML scalar when it parses as one (`true`, `0.4`,
/// `8080`), otherwise the raw string (`127.0.0.1:7070`, a path).
fn env_value(raw: &str) -> toml::Value {
    match format!("v = {raw}").parse::<toml::Table>() {
        Ok(mut t) => match t.remove("v") {
            Some(
                v @ (toml::Value::Integer(_) | toml::Value::Float(_) | toml::Value::Boolean(_)),
            ) => v,
            _ => toml::Value::String(raw.to_string()),
        },
        Err(_) => toml::Value::String(raw.to_string()),
    }
}

/// `EDESK_DESK__TEAMS__SAC_SUPPORT` → `desk.teams.sac-support`: `__`
/// separates levels, names are lower-cased, and since a variable name
/// cannot hold `-`, a segment with `_` matches an existing key spelled with
/// `-` in the layers below.
fn env_key(below: &Figment, var: &str) -> String {
    let mut key = String::new();
    for seg in var[ENV_PREFIX.len()..].split("__") {
        let seg = seg.to_ascii_lowercase();
        let hyphenated = seg.replace('_', "-");
        let join = |s: &str| {
            if key.is_empty() {
                s.to_string()
            } else {
                format!("{key}.{s}")
            }
        };
        key = if below.find_value(&join(&seg)).is_err()
            && below.find_value(&join(&hyphenated)).is_ok()
        {
            join(&hyphenated)
        } else {
            join(&seg)
        };
    }
    key
}

/// The bot token is a secret: it comes from the environment
/// (`EDESK_DISCORD__TOKEN`) or from `discord.token_file`, a file kept outside
/// the repository, never from the configuration file, which is shared.
fn token_not_in_a_file(figment: &Figment) -> Result<(), ConfigError> {
    match figment.find_metadata("discord.token").map(|m| &m.source) {
        Some(Some(Source::File(path))) => Err(ConfigError::File {
            path: path.clone(),
            message: "`discord.token`: the bot token is not read from the configuration \
                      file; set EDESK_DISCORD__TOKEN or `discord.token_file`"
                .into(),
        }),
        _ => Ok(()),
    }
}

/// A value `validate` refused, named with the file or variable that set it
/// (a default keeps the plain key).
fn with_origin(figment: &Figment, e: ConfigError) -> ConfigError {
    let ConfigError::Invalid { key, message } = e else {
        return e;
    };
    match figment.find_metadata(&key).map(|m| (&m.source, &m.name)) {
        Some((Some(Source::File(path)), _)) => ConfigError::File {
            path: path.clone(),
            message: format!("`{key}`: {message}"),
        },
        Some((Some(Source::Custom(s)), name)) if s == ENV_SOURCE => ConfigError::Env {
            var: name.to_string(),
            message: format!("`{key}`: {message}"),
        },
        _ => ConfigError::Invalid { key, message },
    }
}

/// figment's error as ours: the key, and the file or variable that set it.
fn config_error(e: figment::Error) -> ConfigError {
    let key = e.path.join(".");
    let message = match &e.kind {
        Kind::UnknownField(_, expected) if !expected.is_empty() => format!(
            "`{key}` is not a configuration key (expected one of: {})",
            expected.join(", ")
        ),
        Kind::UnknownField(..) => format!("`{key}` is not a configuration key"),
        kind if key.is_empty() => kind.to_string(),
        kind => format!("`{key}`: {kind}"),
    };
    match e.metadata {
        Some(Metadata {
            source: Some(Source::File(path)),
            ..
        }) => ConfigError::File { path, message },
        Some(Metadata {
            source: Some(Source::Custom(s)),
            name,
            ..
        }) if s == ENV_SOURCE => ConfigError::Env {
            var: name.into_owned(),
            message,
        },
        _ => ConfigError::Invalid { key, message },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_match_design() {
        let c = Config::load(None, env(&[]), &Overrides::default()).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("./data"));
        assert_eq!(c.http.bind.to_string(), "127.0.0.1:7070");
        assert_eq!(c.lmtp.bind.to_string(), "127.0.0.1:2424");
        assert_eq!(c.smtp.url, None);
        assert_eq!(c.mail.domain, "edesk.example.com");
        assert_eq!(c.shutdown.grace_ms, 10_000);
        assert_eq!(c.http.header_timeout_ms, 10_000);
        assert_eq!(c.http.request_timeout_ms, 30_000);
        assert_eq!(c.http.max_connections, 1024);
        assert_eq!(c.lmtp.max_connections, 64);
        assert_eq!(c.lmtp.idle_timeout_ms, 300_000);
    }

    #[test]
    fn the_embedded_engine_is_chosen_by_store_backend() {
        let load = |pairs: &[(&str, &str)]| Config::load(None, env(pairs), &Overrides::default());
        let default = load(&[]).unwrap().store.engine_settings().backend;
        assert_eq!(default, crate::store::Backend::Sled);
        let redb = load(&[("EDESK_STORE__BACKEND", "redb")]).unwrap();
        assert_eq!(
            redb.store.engine_settings().backend,
            crate::store::Backend::Redb
        );
        let e = load(&[
            ("EDESK_STORE__BACKEND", "redb"),
            ("EDESK_STORE__URL", "postgres://u@h/d"),
        ])
        .unwrap_err()
        .to_string();
        assert!(e.contains("store.url"), "{e}");
        let e = load(&[("EDESK_STORE__BACKEND", "lmdb")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("store.backend"), "{e}");
    }

    #[test]
    fn hostile_client_limits_from_env() {
        let c = Config::load(
            None,
            env(&[
                ("EDESK_SHUTDOWN__GRACE_MS", "1000"),
                ("EDESK_HTTP__HEADER_TIMEOUT_MS", "500"),
                ("EDESK_LMTP__MAX_CONNECTIONS", "2"),
            ]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(c.shutdown.grace_ms, 1000);
        assert_eq!(c.http.header_timeout_ms, 500);
        assert_eq!(c.lmtp.max_connections, 2);
        let e = Config::load(
            None,
            env(&[("EDESK_LMTP__IDLE_TIMEOUT_MS", "0")]),
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("lmtp.idle_timeout_ms"), "{e}");
    }

    #[test]
    fn layers_apply_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("edesk.toml");
        std::fs::write(
            &f,
            "data_dir = \"/from/file\"\n[http]\nbind = \"127.0.0.1:8000\"\n[faq]\nthreshold = 0.3\n",
        )
        .unwrap();
        let c = Config::load(
            Some(&f),
            env(&[
                ("EDESK_HTTP__BIND", "127.0.0.1:9000"),
                ("EDESK_SMTP__URL", "smtp://127.0.0.1:2525"),
                ("PATH", "/bin"),
            ]),
            &Overrides {
                data_dir: Some("/from/flag".into()),
            },
        )
        .unwrap();
        assert_eq!(c.http.bind.to_string(), "127.0.0.1:9000");
        assert_eq!(c.faq.threshold, 0.3);
        assert_eq!(c.smtp.url.as_deref(), Some("smtp://127.0.0.1:2525"));
        assert_eq!(c.data_dir, PathBuf::from("/from/flag"));
    }

    #[test]
    fn unknown_file_key_names_key_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("bad.toml");
        std::fs::write(&f, "[http]\nbnd = \"127.0.0.1:1\"\n").unwrap();
        let e = Config::load(Some(&f), env(&[]), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("bnd"), "{e}");
        assert!(e.contains("bad.toml"), "{e}");
    }

    #[test]
    fn bad_value_names_env_var() {
        let e = Config::load(
            None,
            env(&[("EDESK_HTTP__BIND", "not-an-address")]),
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("EDESK_HTTP__BIND"), "{e}");
    }

    #[test]
    fn env_underscores_match_hyphenated_keys() {
        let c = Config::load(
            None,
            env(&[("EDESK_DESK__TEAMS__SAC_SUPPORT", "sac@example.org")]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(c.desk.teams["sac-support"], "sac@example.org");
        let c = Config::load(
            None,
            env(&[("EDESK_JOBS__SCHEDULE__RELEASE_HELD", "off")]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(c.jobs.schedule.release_held, "off");
    }

    #[test]
    fn unknown_env_key_is_an_error() {
        let e = Config::load(
            None,
            env(&[("EDESK_HTTP__PORT", "1")]),
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("EDESK_HTTP__PORT") && e.contains("http.port"),
            "{e}"
        );
    }

    #[test]
    fn chat_keys_name_their_origin_and_the_token_stays_out_of_files() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("chat.toml");
        std::fs::write(&f, "[chat]\nlink_max_tries = 0\n").unwrap();
        let e = Config::load(Some(&f), env(&[]), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("chat.toml") && e.contains("chat.link_max_tries"),
            "{e}"
        );
        let e = Config::load(
            None,
            env(&[("EDESK_CHAT__LINK_CODE_TTL_SECS", "0")]),
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("EDESK_CHAT__LINK_CODE_TTL_SECS") && e.contains("chat.link_code_ttl_secs"),
            "{e}"
        );
        std::fs::write(&f, "[discord]\ntoken = \"abc\"\n").unwrap();
        let e = Config::load(Some(&f), env(&[]), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("chat.toml") && e.contains("EDESK_DISCORD__TOKEN"),
            "{e}"
        );

        // From the environment, or the first line of a token file.
        let c = Config::load(
            None,
            env(&[("EDESK_DISCORD__TOKEN", " t0k ")]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(c.discord.resolve_token().unwrap().as_deref(), Some("t0k"));
        let tf = dir.path().join("token");
        std::fs::write(&tf, "from-file\nignored\n").unwrap();
        let c = Config::load(
            None,
            env(&[("EDESK_DISCORD__TOKEN_FILE", tf.to_str().unwrap())]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(
            c.discord.resolve_token().unwrap().as_deref(),
            Some("from-file")
        );
        let mut c = Config::default();
        assert_eq!(c.discord.resolve_token().unwrap(), None);
        c.discord.token_file = Some(dir.path().join("absent"));
        let e = c.discord.resolve_token().unwrap_err().to_string();
        assert!(
            e.contains("discord.token_file") && e.contains("absent"),
            "{e}"
        );
    }

    #[test]
    fn out_of_range_threshold_is_rejected() {
        let e = Config::load(
            None,
            env(&[("EDESK_FAQ__THRESHOLD", "1.5")]),
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("faq.threshold"), "{e}");
        let e = Config::load(
            None,
            env(&[("EDESK_INBOUND__FAQ_THRESHOLD", "-0.1")]),
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("inbound.faq_threshold"), "{e}");
        let c = Config::load(
            None,
            env(&[("EDESK_INBOUND__FAQ_THRESHOLD", "0.8")]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(c.inbound.faq_threshold, 0.8);
    }

    #[test]
    fn file_errors_name_the_file_and_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let e = Config::load(
            Some(&dir.path().join("absent.toml")),
            env(&[]),
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("cannot read config file") && e.contains("absent.toml"),
            "{e}"
        );

        let f = dir.path().join("syntax.toml");
        std::fs::write(&f, "[http\nbind = \"127.0.0.1:1\"\n").unwrap();
        let e = Config::load(Some(&f), env(&[]), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("syntax.toml"), "{e}");

        let f = dir.path().join("types.toml");
        std::fs::write(&f, "[outbox]\nmax_attempts = \"many\"\n").unwrap();
        let e = Config::load(Some(&f), env(&[]), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("types.toml") && e.contains("outbox.max_attempts"),
            "{e}"
        );
        // A later layer that fixes the value wins over the file's.
        let c = Config::load(
            Some(&f),
            env(&[("EDESK_OUTBOX__MAX_ATTEMPTS", "3")]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(c.outbox.max_attempts, 3);

        let f = dir.path().join("section.toml");
        std::fs::write(&f, "[htp]\nbind = \"127.0.0.1:1\"\n").unwrap();
        let e = Config::load(Some(&f), env(&[]), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("`htp`") && e.contains("section.toml"), "{e}");
    }

    #[test]
    fn env_values_keep_their_type_and_optional_keys_are_keys() {
        let c = Config::load(
            None,
            env(&[
                ("EDESK_DESK__COMPANY_DOMAINS", "true"),
                ("EDESK_FAQ__THRESHOLD", "0.25"),
                ("EDESK_FAQ__DIR", "/srv/faq"),
                ("EDESK_CALENDAR__TIME_ZONE", "Europe/Paris"),
                ("EDESK_CONFIG", "/ignored.toml"),
                ("EDESK_LOG", "debug"),
            ]),
            &Overrides::default(),
        )
        .unwrap();
        assert!(c.desk.company_domains);
        assert_eq!(c.faq.threshold, 0.25);
        assert_eq!(c.faq.dir, Some(PathBuf::from("/srv/faq")));
        assert_eq!(c.calendar.time_zone, "Europe/Paris");
        let e = Config::load(
            None,
            env(&[("EDESK_OUTBOX__MAX_ATTEMPTS", "lots")]),
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("EDESK_OUTBOX__MAX_ATTEMPTS") && e.contains("outbox.max_attempts"),
            "{e}"
        );
    }

    #[test]
    fn smtp_urls() {
        let e = SmtpEndpoint::parse("smtp://127.0.0.1:2525").unwrap();
        assert_eq!((e.addr(), e.tls), ("127.0.0.1:2525".to_string(), false));
        let e = SmtpEndpoint::parse("smtps://mail.example.com").unwrap();
        assert_eq!(
            (e.addr(), e.tls),
            ("mail.example.com:465".to_string(), true)
        );
        assert_eq!(e.tls_name(), "mail.example.com");
        let e = SmtpEndpoint::parse("smtp://[::1]").unwrap();
        assert_eq!(
            (e.addr(), e.tls_name()),
            ("[::1]:25".to_string(), "::1".to_string())
        );
        for bad in [
            "http://x",
            "smtp://user:pw@host",
            "smtp://host/path",
            "smtp://",
            "127.0.0.1:25",
            "smtp://host:99999",
        ] {
            assert!(SmtpEndpoint::parse(bad).is_err(), "{bad}");
        }
    }
}
