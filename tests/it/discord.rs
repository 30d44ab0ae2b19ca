//! The Discord bot end to end with the real serenity client and a fake
//! Discord on 127.0.0.1: a REST server (serenity's `HttpBuilder::proxy`
//! sends every API call there) and a WebSocket gateway (the URL `GET
//! /gateway` answers). The gateway says HELLO and READY, then dispatches
//! the recorded payloads in `tests/fixtures/discord/`; the test asserts on
//! the REST calls the bot makes.

use crate::support;
use crate::support::Served;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use support::lmtp::{self, Mail};
use support::{Daemon, Sink, spawn_daemon};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as WsMessage;

const BOT: &str = "900000000000000001";
const USER: &str = "100000000000000001";
const STRANGER: &str = "100000000000000002";
const TEAM_MEMBER: &str = "100000000000000009";
const DM: &str = "300000000000000001";
const GUILD: &str = "400000000000000001";
const CHANNEL: &str = "500000000000000001";
const TEAM_CHANNEL: &str = "600000000000000001";

/// One REST call the bot made.
#[derive(Debug, Clone)]
struct Call {
    method: String,
    path: String,
    body: Value,
    /// The id the fake gave a message the bot posted.
    reply_id: Option<String>,
}

#[derive(Default)]
struct Fake {
    calls: Mutex<Vec<Call>>,
    next_id: Mutex<u64>,
    gateway_url: Mutex<String>,
}

impl Fake {
    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    fn id(&self) -> String {
        let mut n = self.next_id.lock().unwrap();
        *n += 1;
        format!("{}", 800_000_000_000_000_000u64 + *n)
    }
}

fn user(id: &str, name: &str) -> Value {
    json!({"id": id, "username": name, "discriminator": "0", "global_name": null, "avatar": null, "bot": id == BOT})
}

/// A Message as Discord returns it for a message the bot posted.
fn message(id: &str, channel: &str, content: &str) -> Value {
    json!({
        "id": id, "channel_id": channel, "author": user(BOT, "edesk"), "content": content,
        "timestamp": "2026-12-02T10:00:00.000000+00:00", "edited_timestamp": null, "tts": false,
        "mention_everyone": false, "mentions": [], "mention_roles": [], "attachments": [],
        "embeds": [], "pinned": false, "type": 0
    })
}

/// How long the fake Discord takes to answer a thread's creation: a team
/// member answers in the thread meanwhile, as a quick one could on Discord.
const THREAD_CREATION: Duration = Duration::from_millis(1500);

/// The thread a `/threads` call created: Discord gives a thread started
/// from a message that message's id.
fn thread_of(call: &Call) -> String {
    call.path
        .trim_matches('/')
        .split('/')
        .nth(3)
        .unwrap_or_default()
        .to_string()
}

/// The fake REST API: records every call, answers what serenity parses.
async fn rest(fake: Arc<Fake>, method: Method, uri: Uri, body: Bytes) -> Response {
    let path = uri.path().trim_start_matches("/api/v10").to_string();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let seg: Vec<&str> = path.trim_matches('/').split('/').collect();
    let reply_id =
        (method == Method::POST && seg.len() == 3 && seg[0] == "channels" && seg[2] == "messages")
            .then(|| fake.id());
    fake.calls.lock().unwrap().push(Call {
        method: method.to_string(),
        path: path.clone(),
        body: body.clone(),
        reply_id: reply_id.clone(),
    });
    let ok = |v: Value| (StatusCode::OK, axum::Json(v)).into_response();
    match (method.as_str(), seg.as_slice()) {
        ("GET", ["gateway"] | ["gateway", "bot"]) => ok(json!({
            "url": *fake.gateway_url.lock().unwrap(), "shards": 1,
            "session_start_limit": {"total": 1000, "remaining": 1000, "reset_after": 0, "max_concurrency": 1}
        })),
        ("POST", ["users", "@me", "channels"]) => ok(json!({
            "id": DM, "type": 1, "last_message_id": null,
            "recipients": [user(body["recipient_id"].as_str().unwrap_or(USER), "someone")]
        })),
        ("POST", ["channels", channel, "messages"]) => {
            let content = body["content"].as_str().unwrap_or("");
            ok(message(&reply_id.unwrap_or_default(), channel, content))
        }
        ("POST", ["channels", channel, "messages", message, "threads"]) => {
            tokio::time::sleep(THREAD_CREATION).await;
            ok(json!({
                "id": message, "type": 11, "guild_id": GUILD, "parent_id": channel,
                "name": body["name"].clone()
            }))
        }
        ("POST", ["webhooks", _, _]) => ok(message(
            &fake.id(),
            CHANNEL,
            body["content"].as_str().unwrap_or(""),
        )),
        ("PUT", ["applications", _, "guilds", _, "commands"])
        | ("PUT", ["applications", _, "commands"]) => ok(json!([])),
        ("PUT", ["channels", _, "messages", _, "reactions", _, "@me"])
        | ("POST", ["interactions", _, _, "callback"]) => StatusCode::NO_CONTENT.into_response(),
        _ => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"message": "Unknown", "code": 0})),
        )
            .into_response(),
    }
}

/// The fake gateway: HELLO, READY after IDENTIFY, then every payload sent
/// on `events`; heartbeats are acknowledged.
async fn gateway(
    listener: tokio::net::TcpListener,
    mut events: mpsc::UnboundedReceiver<Value>,
    identify: Arc<Mutex<Option<Value>>>,
) {
    let (stream, _) = listener.accept().await.unwrap();
    let ws = tokio_tungstenite::accept_async(stream).await.unwrap();
    let (mut tx, mut rx) = ws.split();
    let send = |v: Value| WsMessage::Text(v.to_string());
    tx.send(send(json!({"op": 10, "d": {"heartbeat_interval": 45000}})))
        .await
        .unwrap();
    let mut seq = 0u64;
    loop {
        tokio::select! {
            m = rx.next() => {
                let Some(Ok(WsMessage::Text(t))) = m else { return };
                let v: Value = serde_json::from_str(&t).unwrap();
                match v["op"].as_u64() {
                    Some(2) => {
                        *identify.lock().unwrap() = Some(v.clone());
                        seq += 1;
                        let ready = json!({"op": 0, "s": seq, "t": "READY", "d": {
                            "v": 10, "user": user(BOT, "edesk"), "guilds": [],
                            "session_id": "fake-session", "resume_gateway_url": "ws://127.0.0.1:1",
                            "shard": [0, 1], "application": {"id": BOT, "flags": 0}
                        }});
                        tx.send(send(ready)).await.unwrap();
                    }
                    Some(1) => tx.send(send(json!({"op": 11}))).await.unwrap(),
                    _ => {}
                }
            }
            e = events.recv() => {
                let Some(mut e) = e else { return };
                seq += 1;
                e["s"] = json!(seq);
                tx.send(send(e)).await.unwrap();
            }
        }
    }
}

/// A recorded payload from `tests/fixtures/discord/NAME.json` with its
/// placeholders filled.
fn fixture(name: &str, vars: &[(&str, &str)]) -> Value {
    let path = format!(
        "{}/tests/fixtures/discord/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut text = std::fs::read_to_string(&path).unwrap();
    for (k, v) in vars {
        text = text.replace(&format!("{{{{{k}}}}}"), &v.replace('"', "\\\""));
    }
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

struct World {
    fake: Arc<Fake>,
    events: mpsc::UnboundedSender<Value>,
    identify: Arc<Mutex<Option<Value>>>,
    _rt: tokio::runtime::Runtime,
    d: Daemon,
    sink: Sink,
    _dir: tempfile::TempDir,
    seq: u64,
}

impl World {
    fn start() -> World {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let fake = Arc::new(Fake::default());
        let (events, rx) = mpsc::unbounded_channel();
        let identify = Arc::new(Mutex::new(None));
        let (rest_addr, ws_addr): (SocketAddr, SocketAddr) = rt.block_on(async {
            let rest_l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let ws_l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let (ra, wa) = (rest_l.local_addr().unwrap(), ws_l.local_addr().unwrap());
            let f = fake.clone();
            let app = axum::Router::new()
                .fallback(move |m: Method, u: Uri, b: Bytes| rest(f.clone(), m, u, b));
            tokio::spawn(async move { axum::serve(rest_l, app).await.unwrap() });
            tokio::spawn(gateway(ws_l, rx, identify.clone()));
            (ra, wa)
        });
        *fake.gateway_url.lock().unwrap() = format!("ws://{ws_addr}");
        let dir = tempfile::tempdir().unwrap();
        let bots = dir.path().join("bots");
        std::fs::create_dir_all(&bots).unwrap();
        std::fs::write(
            bots.join("discord.toml"),
            format!("guilds = [{GUILD}]\n[rate_limit]\nuser_per_minute = 8\nchannel_per_minute = 50\n[team_channels]\nexportops = {TEAM_CHANNEL}\n"),
        )
        .unwrap();
        let sink = Sink::start(&dir.path().join("sink"));
        let api = format!("http://{rest_addr}");
        let d = spawn_daemon(
            &dir.path().join("data"),
            &[
                ("EDESK_DISCORD__TOKEN", "test-token"),
                ("EDESK_DISCORD__API_URL", &api),
                ("EDESK_CHAT__BOTS_DIR", bots.to_str().unwrap()),
                ("EDESK_SMTP__URL", &sink.url()),
            ],
        );
        d.wait_for("the bot's READY", || {
            d.log().contains("Discord bot ready").then_some(())
        });
        World {
            fake,
            events,
            identify,
            _rt: rt,
            d,
            sink,
            _dir: dir,
            seq: 0,
        }
    }

    fn id(&mut self) -> String {
        self.seq += 1;
        format!("{}", 200_000_000_000_000_000u64 + self.seq)
    }

    /// A MESSAGE_CREATE from `author` in `channel` (a guild channel when
    /// `guild`); returns the number of REST calls before it.
    fn message(&mut self, author: &str, channel: &str, guild: bool, content: &str) -> usize {
        let before = self.fake.calls().len();
        let id = self.id();
        let name = if guild {
            "message_create_guild"
        } else {
            "message_create_dm"
        };
        let mut e = fixture(
            name,
            &[
                ("ID", &id),
                ("AUTHOR", author),
                ("CHANNEL", channel),
                ("GUILD", GUILD),
                ("BOT", BOT),
                ("CONTENT", content),
            ],
        );
        if content.contains(&format!("<@{BOT}>")) {
            e["d"]["mentions"] = json!([user(BOT, "edesk")]);
        }
        self.events.send(e).unwrap();
        before
    }

    /// Waits until `f` finds what it wants among the calls after `from`.
    fn wait<T>(&self, what: &str, from: usize, f: impl Fn(&[Call]) -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let calls = self.fake.calls();
            if let Some(v) = f(&calls[from.min(calls.len())..]) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; calls: {:#?}\nlog:\n{}",
                &calls[from.min(calls.len())..],
                self.d.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Posts to a channel after `from`: (channel, content, allowed_mentions).
    fn posts(calls: &[Call]) -> Vec<(String, String, Value)> {
        calls
            .iter()
            .filter(|c| {
                c.method == "POST"
                    && c.path.starts_with("/channels/")
                    && c.path.ends_with("/messages")
            })
            .map(|c| {
                let ch = c.path.split('/').nth(2).unwrap_or("").to_string();
                (
                    ch,
                    c.body["content"].as_str().unwrap_or("").to_string(),
                    c.body["allowed_mentions"].clone(),
                )
            })
            .collect()
    }

    /// Waits for the replies to a message: calls settle for a moment.
    fn settle(&self, from: usize) -> Vec<Call> {
        let mut last = usize::MAX;
        loop {
            std::thread::sleep(Duration::from_millis(1200));
            let n = self.fake.calls().len();
            if n == last && n > from {
                return self.fake.calls()[from..].to_vec();
            }
            last = n;
        }
    }
}

const ORDER: &str = r#"{"so": "10458321", "po": "ACME-PO-7781", "lang": "en", "available_at": "2025-03-03T09:02:00+01:00", "holds": [{"type": "export", "line": null, "released": false}], "lines": [{"line": "1.1", "pid": "L-ASA5516-TD-1Y", "qty": 1}], "recipients": [{"name": "John Harper", "email": "j.harper@acme.example.com", "lang": "en"}]}"#;

/// An order with 150 lines: its description is longer than one message.
fn long_order() -> String {
    let lines: Vec<Value> = (1..=150)
        .map(|i| json!({"line": format!("1.{i}"), "pid": format!("L-SW-LIC-{i:04}-TERM-36M"), "qty": i, "images": [{"file": format!("image-{i}.bin"), "md5": "9fb4c92d620d4be2a9f190e7fa6332b3"}]}))
        .collect();
    json!({"so": "10458999", "lang": "en", "available_at": "2026-11-03T09:02:00+01:00", "lines": lines,
           "recipients": [{"email": "j.harper@acme.example.com"}]})
    .to_string()
}

fn assert_no_mentions(allowed: &Value) {
    assert_eq!(
        allowed["parse"],
        json!([]),
        "allowed_mentions parses nothing: {allowed}"
    );
    assert_eq!(allowed["roles"], json!([]));
    assert_eq!(allowed["users"], json!([]));
}

#[test]
fn the_real_serenity_client_against_a_fake_discord() {
    let mut w = World::start();
    assert_eq!(w.d.post_json("/v1/orders", ORDER).0, 201);

    identify_and_slash_commands(&w);
    a_dm_question_is_answered_and_rated(&mut w);
    an_order_question_in_a_channel_goes_to_a_dm(&mut w);
    link_by_dm_then_a_long_order_is_split(&mut w);
    a_slash_command_is_answered_as_its_interaction_response(&w);
    a_chat_escalation_is_relayed_from_the_team_thread(&mut w);
    a_mail_ticket_is_answered_from_its_team_thread_by_mail(&mut w);
    a_channel_flood_gets_one_polite_answer(&mut w);
}

/// IDENTIFY asks only for the intents the bot uses; the slash commands carry
/// the command language's names, in the configured guild.
fn identify_and_slash_commands(w: &World) {
    let ident = w.identify.lock().unwrap().clone().unwrap();
    let intents = ident["d"]["intents"].as_u64().unwrap();
    // GUILD_MESSAGES | GUILD_MESSAGE_REACTIONS | DIRECT_MESSAGES | DIRECT_MESSAGE_REACTIONS | MESSAGE_CONTENT
    assert_eq!(
        intents,
        (1 << 9) | (1 << 10) | (1 << 12) | (1 << 13) | (1 << 15),
        "{ident}"
    );
    // Slash commands with the command language's names, in the configured guild.
    let cmds = w.wait("slash command registration", 0, |c| {
        c.iter()
            .find(|c| c.method == "PUT" && c.path.contains(&format!("/guilds/{GUILD}/commands")))
            .cloned()
    });
    let names: Vec<&str> = cmds
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    for n in [
        "faq",
        "order",
        "restore",
        "resend",
        "link",
        "verify",
        "escalate",
        "unsubscribe",
        "lang",
        "help",
    ] {
        assert!(names.contains(&n), "{n} in {names:?}");
    }
}

/// A question in a DM: answered there, mentions off, 👍/👎 offered; 👎 on
/// the answer is a rating of that FAQ entry.
fn a_dm_question_is_answered_and_rated(w: &mut World) {
    let from = w.message(
        USER,
        DM,
        false,
        "How do I stop receiving email notifications?",
    );
    let calls = w.wait("the FAQ answer", from, |c| {
        let p = World::posts(c);
        (!p.is_empty() && c.iter().filter(|c| c.path.contains("/reactions/")).count() >= 2)
            .then(|| c.to_vec())
    });
    let posts = World::posts(&calls);
    assert_eq!(posts[0].0, DM);
    assert!(
        posts[0].1.contains("stop receiving email notifications"),
        "{posts:?}"
    );
    assert_no_mentions(&posts[0].2);
    let answer_id = calls.iter().find_map(|c| c.reply_id.clone()).unwrap();

    // 👎 on the answer is a rating of that FAQ entry.
    let reaction = fixture(
        "message_reaction_add",
        &[("USER", USER), ("CHANNEL", DM), ("MESSAGE", &answer_id)],
    );
    w.events.send(reaction).unwrap();
    w.d.wait_for("the rating", || {
        let (_, body) = w.d.get("/v1/faq/feedback");
        let v: Value = serde_json::from_str(&body).ok()?;
        v["entries"]
            .as_array()?
            .iter()
            .find(|e| e["id"] == "stop-receiving-email-notifications" && e["down"] == 1)
            .map(|_| ())
    });
}

/// In a server channel, an order question goes to a DM; the channel only
/// hears that it did. Echoed text cannot ping anyone.
fn an_order_question_in_a_channel_goes_to_a_dm(w: &mut World) {
    let from = w.message(STRANGER, CHANNEL, true, &format!("<@{BOT}> order 10458321"));
    let calls = w.settle(from);
    assert!(
        calls
            .iter()
            .any(|c| c.path == "/users/@me/channels" && c.body["recipient_id"] == STRANGER),
        "DM opened: {calls:#?}"
    );
    let posts = World::posts(&calls);
    let in_channel: Vec<_> = posts.iter().filter(|p| p.0 == CHANNEL).collect();
    let in_dm: Vec<_> = posts.iter().filter(|p| p.0 == DM).collect();
    assert_eq!(in_channel.len(), 1, "{posts:?}");
    assert!(in_channel[0].1.contains("direct message"));
    assert!(
        in_dm[0].1.contains("link you@example.com"),
        "a stranger learns how to link: {in_dm:?}"
    );
    for p in &posts {
        assert!(
            !p.1.contains("export") && !p.1.contains("ASA"),
            "nothing of the order: {p:?}"
        );
    }
    let from = w.message(STRANGER, CHANNEL, true, "!order @everyone<@&42>@here");
    let posts = World::posts(&w.settle(from));
    let echo = &posts.iter().find(|p| p.0 == CHANNEL).unwrap().1;
    assert!(
        echo.contains("everyone")
            && !echo.contains("@everyone")
            && !echo.contains("@here")
            && !echo.contains("<@&"),
        "{echo:?}"
    );
    assert_no_mentions(&posts[0].2);
}

/// Link by DM (the code arrives by mail), then a long order is split at
/// 2,000 characters on line boundaries.
fn link_by_dm_then_a_long_order_is_split(w: &mut World) {
    assert_eq!(w.d.post_json("/v1/orders", &long_order()).0, 201);
    let from = w.message(USER, DM, false, "link j.harper@acme.example.com");
    w.wait("the code reply", from, |c| {
        World::posts(c)
            .iter()
            .find(|p| p.1.contains("6-digit"))
            .cloned()
    });
    let code = w.d.wait_for("the code mail", || {
        let m = w
            .sink
            .messages()
            .into_iter()
            .map(|m| String::from_utf8_lossy(&m).into_owned())
            .find(|m| m.contains("verification code is: "))?;
        let at = m.find("verification code is: ")? + 22;
        Some(m[at..at + 6].to_string())
    });
    let from = w.message(USER, DM, false, &format!("verify {code}"));
    w.wait("linked", from, |c| {
        World::posts(c)
            .iter()
            .find(|p| p.1.contains("linked to"))
            .cloned()
    });
    let from = w.message(USER, DM, false, "order 10458999");
    let calls = w.settle(from);
    let parts: Vec<String> = World::posts(&calls)
        .into_iter()
        .filter(|p| p.0 == DM)
        .map(|p| p.1)
        .collect();
    assert!(
        parts.len() >= 2,
        "split: {parts:?}\nall: {:#?}",
        World::posts(&w.fake.calls())
            .iter()
            .map(|p| (p.0.clone(), p.1.chars().take(60).collect::<String>()))
            .collect::<Vec<_>>()
    );
    for p in &parts {
        assert!(p.chars().count() <= 2000);
        for line in p.lines().filter(|l| l.starts_with("Line ")) {
            assert!(line.ends_with("image(s))"), "cut inside a line: {line:?}");
        }
    }
    let all = parts.join("\n");
    assert!(
        all.contains("Line 1.1:") && all.contains("Line 1.150:"),
        "every line shown"
    );
}

/// A slash command is answered as the interaction's response.
fn a_slash_command_is_answered_as_its_interaction_response(w: &World) {
    let before = w.fake.calls().len();
    let i = fixture(
        "interaction_create",
        &[
            ("USER", USER),
            ("CHANNEL", DM),
            ("BOT", BOT),
            ("NAME", "faq"),
            ("VALUE", "How do I stop receiving email notifications?"),
        ],
    );
    w.events.send(i).unwrap();
    let cb = w.wait("the interaction response", before, |c| {
        c.iter().find(|c| c.path.ends_with("/callback")).cloned()
    });
    assert_eq!(cb.body["type"], 4);
    assert!(
        cb.body["data"]["content"]
            .as_str()
            .unwrap()
            .contains("notifications")
    );
    assert_no_mentions(&cb.body["data"]["allowed_mentions"]);
}

/// Escalation: posted in the team's channel with a thread; a team member's
/// reply in the thread reaches the customer's DM; then the bot stays silent
/// in that conversation.
fn a_chat_escalation_is_relayed_from_the_team_thread(w: &mut World) {
    let from = w.message(
        USER,
        DM,
        false,
        "escalate my export hold on 10458321 has lasted a week",
    );
    // The team answers while Discord is still creating the thread.
    let (calls, thread) = w.wait("the ticket in the team channel", from, |c| {
        c.iter()
            .find(|c| c.path.ends_with("/threads"))
            .map(|t| (c.to_vec(), thread_of(t)))
    });
    let posts = World::posts(&calls);
    assert!(
        posts
            .iter()
            .any(|p| p.0 == TEAM_CHANNEL && p.1.contains("T-000001") && p.1.contains("exportops")),
        "{posts:?}"
    );
    assert!(posts.iter().any(|p| p.0 == DM && p.1.contains("T-000001")));
    let from = w.message(
        TEAM_MEMBER,
        &thread,
        true,
        "Released this morning, download away.",
    );
    w.wait("the relayed answer", from, |c| {
        World::posts(c)
            .into_iter()
            .find(|p| p.0 == DM && p.1.contains("Released this morning"))
    });
    let from = w.message(USER, DM, false, "thanks! what about my other order?");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        World::posts(&w.fake.calls()[from..]).is_empty(),
        "silent after a person answered"
    );
}

/// A mail ticket is posted in its team's channel too, and the team's reply
/// in its thread reaches the customer by mail.
fn a_mail_ticket_is_answered_from_its_team_thread_by_mail(w: &mut World) {
    let from = w.fake.calls().len();
    let to = ["support@edesk.example.com"];
    let mail = Mail::new("j.harper@acme.example.com", &to)
        .header("From: j.harper@acme.example.com")
        .header("Message-Id: <hold-1@acme.example.com>")
        .header("Subject: Export hold on SO 10458321")
        .body("Hello,\nour order 10458321 has been on an export hold for a week. Who can release it?\nThanks, John");
    let out = lmtp::deliver(w.d.lmtp, "j.harper@acme.example.com", &to, &mail.to_bytes());
    assert!(out.ok(), "{}", out.transcript);
    let (calls, thread) = w.wait("the mail ticket in the team channel", from, |c| {
        c.iter()
            .find(|c| c.path.ends_with("/threads"))
            .map(|t| (c.to_vec(), thread_of(t)))
    });
    assert!(
        World::posts(&calls).iter().any(|p| p.0 == TEAM_CHANNEL
            && p.1.contains("T-000002")
            && p.1.contains("j.harper@acme.example.com")
            && p.1.contains("export hold")),
        "{:?}",
        World::posts(&calls)
    );
    let from = w.message(
        TEAM_MEMBER,
        &thread,
        true,
        "Released for your mail ticket too.",
    );
    w.d.wait_for(
        "the team's thread reply mailed in the customer's thread",
        || {
            w.sink.messages().into_iter().find(|raw| {
                let m = mail_parser::MessageParser::default().parse(raw.as_slice());
                m.is_some_and(|m| {
                    m.to().and_then(|a| a.first()).and_then(|a| a.address())
                        == Some("j.harper@acme.example.com")
                        && m.references().as_text_list().is_some_and(|ids| {
                            ids.iter().any(|i| i.contains("hold-1@acme.example.com"))
                        })
                        && m.body_text(0)
                            .is_some_and(|b| b.contains("Released for your mail ticket too."))
                })
            })
        },
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        World::posts(&w.fake.calls()[from..]).is_empty(),
        "a mail ticket's answer goes by mail, not to a chat"
    );
}

/// Rate limit in a channel: a polite answer once, then quiet.
fn a_channel_flood_gets_one_polite_answer(w: &mut World) {
    let flooder = "100000000000000005";
    let from = w.fake.calls().len();
    for _ in 0..11 {
        w.message(flooder, CHANNEL, true, "!help");
    }
    let posts = World::posts(&w.settle(from));
    let polite = posts.iter().filter(|p| p.1.contains("Please wait")).count();
    assert_eq!(polite, 1, "{posts:?}");
    assert_eq!(
        posts.len(),
        9,
        "8 answers and one polite refusal: {posts:?}"
    );
}
