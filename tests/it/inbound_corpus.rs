//! The fixture corpus under `tests/fixtures/mail/`: extraction quality per
//! language, a golden file of `mail inspect --json` output, and the
//! decisions that matter for each kind of message.
//!
//! Regenerate the golden file after reviewing a change with
//! `EDESK_UPDATE_GOLDEN=1 cargo test --test it inbound_corpus`.

use std::path::{Path, PathBuf};

use edesk::desk::routing::Route;
use edesk::domain::Team;
use edesk::inbound::cmd::render;
use edesk::inbound::eval::{eml_files, evaluate};
use edesk::inbound::{Action, Decision, Kind, MailCommand, MemWorld, analyze};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mail")
}

fn world() -> MemWorld {
    let text = std::fs::read_to_string(dir().join("world.json")).unwrap();
    MemWorld::from_json(&text).unwrap()
}

fn decide(name: &str) -> Decision {
    let w = world();
    let raw = std::fs::read(dir().join(format!("{name}.eml"))).unwrap();
    analyze(&raw, &w, &w).unwrap()
}

#[test]
fn extraction_reaches_95_percent_per_language() {
    let w = world();
    let report = evaluate(&dir(), &w, &w).unwrap();
    println!("{}", report.summary());
    for lang in ["en", "fr"] {
        let sc = &report.per_lang[lang];
        assert!(sc.total >= 20, "{lang}: only {} fixtures", sc.total);
        assert!(
            sc.share >= 0.95,
            "{lang}: {:.1}% ({}/{})\n{}",
            sc.share * 100.0,
            sc.passed,
            sc.total,
            report.summary()
        );
    }
}

#[test]
fn golden_inspect_json() {
    let w = world();
    let mut out = String::new();
    for f in eml_files(&dir()).unwrap() {
        let raw = std::fs::read(&f).unwrap();
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        out.push_str(&render(&name, &analyze(&raw, &w, &w).unwrap(), true));
    }
    let golden =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/inbound_inspect.jsonl");
    if std::env::var_os("EDESK_UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &out).unwrap();
    }
    let want = std::fs::read_to_string(&golden).unwrap();
    for (got, want) in out.lines().zip(want.lines()) {
        assert_eq!(got, want);
    }
    assert_eq!(out.lines().count(), want.lines().count());
}

#[test]
/// DESIGN.md's contract fields, all of them, plus the fields added since
/// (`auth`: what proves the sender); none renamed or dropped.
fn inspect_json_has_the_contract_fields_and_only_documented_additions() {
    let d = decide("gmail-en-reply");
    let v: serde_json::Value = serde_json::from_str(&render("x.eml", &d, true)).unwrap();
    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "auth",
            "authorized",
            "faq",
            "file",
            "kind",
            "lang",
            "message_id",
            "new_text",
            "orders",
            "reasons",
            "route",
            "should_reply"
        ]
    );
}

#[test]
fn machine_mail_is_never_answered() {
    let cases = [
        ("postfix-en-dsn", Kind::Bounce),
        ("postfix-en-delayed", Kind::Bounce),
        ("exim-en-bounce", Kind::Bounce),
        ("exchange-en-ndr", Kind::Bounce),
        ("exchange-fr-ndr", Kind::Bounce),
        ("outlook-en-ooo", Kind::Autoreply),
        ("outlook-fr-ooo", Kind::Autoreply),
        ("gmail-en-vacation", Kind::Autoreply),
        ("orange-fr-autoreply", Kind::Autoreply),
        ("outlook-en-mdn", Kind::Autoreply),
        ("outlook-fr-lu", Kind::Autoreply),
        ("loop-en-own", Kind::Autoreply),
        ("list-en-newsletter", Kind::List),
        ("garbage-xx-binary", Kind::Malformed),
        ("hostile-en-nofrom", Kind::Malformed),
    ];
    for (name, kind) in cases {
        let d = decide(name);
        assert_eq!(d.kind, kind, "{name}: {:?}", d.reasons);
        assert!(!d.should_reply, "{name}");
        assert_eq!(d.route, Route::None, "{name}");
        assert!(!d.reasons.is_empty(), "{name}");
    }
}

#[test]
fn hard_bounces_suppress_the_failed_address_soft_ones_do_not() {
    let d = decide("postfix-en-dsn");
    assert_eq!(
        d.action,
        Action::Suppress {
            address: "j.harper@acme.example.com".into()
        }
    );
    assert_eq!(d.orders, ["10458321"]);
    let d = decide("exim-en-bounce");
    assert_eq!(
        d.action,
        Action::Suppress {
            address: "marie.dupont@dupont-sa.example.fr".into()
        }
    );
    let d = decide("postfix-en-delayed");
    assert_eq!(d.action, Action::Ignore);
    assert!(!d.bounce.unwrap().hard);
}

#[test]
fn human_mail_by_client_is_a_reply_threaded_to_its_order() {
    let cases = [
        ("outlook-en-toppost", "10458321"),
        ("outlookweb-en-htmlonly", "30112233"),
        ("gmail-fr-reply", "20571234"),
        ("orange-fr-reply", "40998877"),
        ("free-fr-reply", "20571234"),
        ("lotus-en-reply", "30112233"),
    ];
    for (name, so) in cases {
        let d = decide(name);
        assert_eq!(d.kind, Kind::Reply, "{name}");
        assert!(d.should_reply, "{name}");
        assert_eq!(d.orders, [so], "{name}");
        assert!(d.authorized, "{name}: {:?}", d.reasons);
    }
}

#[test]
fn language_follows_the_new_text() {
    for (name, lang) in [
        ("outlook-fr-toppost", "fr"),
        ("iphone-fr-reply", "fr"),
        ("gmail-en-reply", "en"),
        ("hostile-fr-8bit", "fr"),
    ] {
        assert_eq!(decide(name).lang.as_str(), lang, "{name}");
    }
}

#[test]
fn commands_en_fr() {
    assert_eq!(
        decide("outlook-en-unsubscribe").action,
        Action::Command(MailCommand::Unsubscribe)
    );
    assert_eq!(
        decide("gmail-fr-desabonner").action,
        Action::Command(MailCommand::Unsubscribe)
    );
    assert_eq!(
        decide("outlook-fr-restaurer").action,
        Action::Command(MailCommand::Restore(Some("40998877".parse().unwrap())))
    );
    assert_eq!(
        decide("gmail-en-resend").action,
        Action::Command(MailCommand::Resend(Some("10458321".parse().unwrap())))
    );
}

/// A command acts only when the mail proves its sender: their reply token
/// or a reply to our mail to them. A From line and a Message-ID the sender
/// chose are no proof: the command is not run, the sender is told how.
#[test]
fn commands_act_only_when_the_mail_proves_its_sender() {
    use edesk::inbound::auth::Proof;
    for name in ["forged-en-unsubscribe", "forged-fr-desabonner"] {
        let d = decide(name);
        assert_eq!(
            d.action,
            Action::UnprovenCommand(MailCommand::Unsubscribe),
            "{name}"
        );
        assert_eq!(d.auth, Some(Proof::Unproven), "{name}");
        assert!(d.should_reply, "{name}: told how to do it safely");
        assert!(
            d.reasons.iter().any(|r| r.contains("not run")),
            "{name}: {:?}",
            d.reasons
        );
    }
    let d = decide("thunderbird-en-unsubscribe-reply");
    assert_eq!(d.action, Action::Command(MailCommand::Unsubscribe));
    assert!(
        matches!(&d.auth, Some(Proof::ReplyToOurMail { message_id }) if message_id == "notif.30112233.1@edesk.example.com"),
        "{:?}",
        d.auth
    );
    assert_eq!(
        decide("outlook-en-unsubscribe").auth,
        Some(Proof::ReplyToken)
    );
}

#[test]
fn quoted_unsubscribe_is_not_a_command() {
    // Every notification quoted below says "reply UNSUBSCRIBE".
    let d = decide("gmail-en-reply");
    assert!(!matches!(d.action, Action::Command(_)), "{:?}", d.action);
}

#[test]
fn orders_only_in_quoted_history_do_not_count() {
    let d = decide("gmail-en-quotedso");
    assert!(d.orders.is_empty(), "{:?}", d.orders);
    assert!(!d.authorized);
}

#[test]
fn strangers_get_no_order_details() {
    let d = decide("plain-en-unauthorized");
    assert_eq!(d.orders, ["10458321"]);
    assert!(!d.authorized);
    assert!(d.reasons.iter().any(|r| r.contains("not authorized")));
    // A partner granted the order by OBA is authorized.
    let d = decide("thunderbird-en-newso");
    assert!(d.authorized, "{:?}", d.reasons);
}

#[test]
fn routing_by_rule() {
    let cases = [
        ("outlook-en-cancel", Route::Team(Team::CustomerService)),
        ("outlookmac-fr-annuler", Route::Team(Team::CustomerService)),
        ("plain-en-ucss", Route::Team(Team::Ucss)),
        ("lotus-fr-export", Route::Team(Team::Exportops)),
        ("thunderbird-fr-new", Route::Team(Team::Exportops)),
        ("thunderbird-en-reply", Route::Team(Team::SacSupport)),
        ("hostile-en-crlfword", Route::Team(Team::Licensing)),
        ("thunderbird-en-newso", Route::Faq),
        // A reseller forwards its customer's mail: routed on the customer's
        // words (a wrong license after registration; three requests).
        ("outlook-en-fwcustomer", Route::Team(Team::Licensing)),
        (
            "thunderbird-fr-fwclient",
            Route::Team(Team::EdeliverySupport),
        ),
    ];
    for (name, route) in cases {
        let d = decide(name);
        assert_eq!(d.route, route, "{name}: {:?}", d.reasons);
    }
}

#[test]
fn hostile_headers_do_not_leak_line_breaks() {
    let d = decide("hostile-en-crlfword");
    assert!(!d.subject.contains(['\r', '\n']), "{:?}", d.subject);
    assert_eq!(d.kind, Kind::Reply);
}

#[test]
fn every_order_named_reaches_the_decision() {
    let w = world();
    let raw = b"From: Ana <ana@partner.example.net>\r\nTo: support@edesk.example.com\r\nSubject: orders\r\nMessage-ID: <named-1@partner.example.net>\r\nDate: Mon, 02 Mar 2026 10:00:00 +0000\r\n\r\nHello, about SO 10458321 and our other order 77001234, PO ACME-PO-7781 and PO 4500099887: nothing arrived.\r\n";
    let d = analyze(raw, &w, &w).unwrap();
    // Known first (the PO resolves to its SO), then the unknown SO, then
    // the unknown PO as written.
    assert_eq!(d.orders, ["10458321", "77001234", "PO 4500099887"]);
    assert_eq!(d.store_orders(), ["10458321"]);
    assert!(d.reasons.iter().any(|r| r.contains("not in the store")));
    // A reply through a token still reports another order written in it.
    let raw = b"From: j.harper@acme.example.com\r\nTo: reply+2ec88d94097bcc8e32d6f0b69fa54158@edesk.example.com\r\nSubject: Re: order\r\nMessage-ID: <named-2@acme.example.com>\r\nDate: Mon, 02 Mar 2026 10:00:00 +0000\r\n\r\nAlso our order 88001122 never arrived.\r\n";
    let d = analyze(raw, &w, &w).unwrap();
    assert_eq!(d.orders, ["10458321", "88001122"]);
    assert!(d.authorized, "{:?}", d.reasons);
}

/// A reply with too few words to tell takes the language of the mail of
/// ours it answers (an FAQ answer in French), before any guess.
#[test]
fn a_short_reply_takes_the_language_of_our_mail_it_answers() {
    let mut w = world();
    w.sent =
        serde_json::from_str(r#"[{"message_id": "faq.77.1@edesk.example.com", "lang": "fr"}]"#)
            .unwrap();
    let raw = "From: Karim Martin <k.martin@free.example.fr>\r\nTo: support@edesk.example.com\r\nSubject: Re: =?UTF-8?Q?R=C3=A9ponse?= eDelivery\r\nMessage-ID: <k1@free.example.fr>\r\nIn-Reply-To: <faq.77.1@edesk.example.com>\r\nDate: Fri, 07 Mar 2025 18:21:58 +0100\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nOK \u{1f44d}\r\n";
    let d = analyze(raw.as_bytes(), &w, &w).unwrap();
    assert_eq!(d.lang.as_str(), "fr", "{:?}", d.reasons);
    assert!(
        d.reasons
            .iter()
            .any(|r| r == "lang: fr, the language of our mail this answers"),
        "{:?}",
        d.reasons
    );
    // Clear words in the new text still win over the thread.
    let raw = raw.replace(
        "OK \u{1f44d}",
        "Thanks, but could you tell me where the license file is?",
    );
    let d = analyze(raw.as_bytes(), &w, &w).unwrap();
    assert_eq!(d.lang.as_str(), "en", "{:?}", d.reasons);
}

/// A real-looking Outlook mail naming a known order, a list of orders the
/// store never saw, a PO it knows and one it does not.
#[test]
fn every_order_named_in_a_list_reaches_the_decision() {
    let d = decide("outlook-en-severalorders");
    assert_eq!(
        d.orders,
        ["10458321", "61200459", "61200460", "PO 4500099887"]
    );
    assert_eq!(d.store_orders(), ["10458321"]);
    assert!(d.authorized, "{:?}", d.reasons);
    assert!(
        d.reasons
            .iter()
            .any(|r| r
                .ends_with("not in the store, kept as written: 61200459, 61200460, PO 4500099887")),
        "{:?}",
        d.reasons
    );
}

#[test]
fn human_mail_without_message_id_or_date_is_still_answered() {
    let d = decide("oldclient-en-noheaders");
    assert_eq!(d.kind, Kind::New);
    assert!(d.should_reply);
    let id = d.message_id.clone().unwrap();
    assert!(id.starts_with("synthetic.") && id.ends_with("@edesk.invalid"));
    assert_eq!(decide("oldclient-en-noheaders").message_id, Some(id));
    assert!(d.reasons.iter().any(|r| r.contains("no Message-ID")));
    assert!(d.reasons.iter().any(|r| r.contains("no Date")));
    assert_ne!(d.route, Route::None);
}

/// An ERP's mailer: no Message-ID, no Date, an unquoted comma in the From
/// name. A person wrote it: threaded, answered by the rules, and the
/// reasons say what was missing.
#[test]
fn broken_headers_do_not_make_a_person_a_machine() {
    let d = decide("oldclient-fr-brokenheaders");
    assert!(d.kind.is_human(), "{:?}", d.reasons);
    assert_eq!(d.kind, Kind::Reply);
    assert_eq!(
        d.sender.as_deref(),
        Some("marie.dupont@dupont-sa.example.fr")
    );
    assert!(d.authorized && d.should_reply, "{:?}", d.reasons);
    assert_eq!(d.orders, ["20571234"]);
    assert_eq!(d.lang.as_str(), "fr");
    assert_ne!(d.route, Route::None);
    let id = d.message_id.clone().unwrap();
    assert!(id.starts_with("synthetic.") && id.ends_with("@edesk.invalid"));
    for missing in ["no Message-ID", "no Date", "From line not a single mailbox"] {
        assert!(
            d.reasons.iter().any(|r| r.contains(missing)),
            "{missing}: {:?}",
            d.reasons
        );
    }
}

#[test]
fn french_typography_and_html_sign_offs() {
    for name in [
        "applemail-fr-nbspattribution",
        "thunderbird-fr-nnbspattribution",
        "gmail-fr-htmlsignoff",
        // Inline answers between Apple Mail's cite blockquotes (HTML only).
        "applemail-fr-htmlinline",
        // Outlook for Mac: a `De :` header block with no-break spaces.
        "outlookmac-fr-nbspheaders",
        // Samsung Email: history after "Message d'origine", `De&nbsp;:`.
        "samsung-fr-htmlonly",
        // Thunderbird, bottom-posted under a blockquote (HTML only).
        "thunderbird-fr-htmlbottom",
    ] {
        let d = decide(name);
        for gone in [
            "écrit",
            "Cordialement",
            "Bien à vous",
            "Merci d’avance",
            "De :",
            "Samsung",
        ] {
            assert!(!d.new_text.contains(gone), "{name}: {:?}", d.new_text);
        }
        let expected = std::fs::read_to_string(dir().join(format!("{name}.expected.txt"))).unwrap();
        assert!(
            edesk::inbound::eval::similarity(&d.new_text, &expected) >= 0.9,
            "{name}: {:?}",
            d.new_text
        );
        assert_eq!(d.lang.as_str(), "fr", "{name}");
    }
    let d = decide("outlookweb-en-htmlsignoff");
    assert!(!d.new_text.contains("Best regards"), "{:?}", d.new_text);
    assert!(!d.new_text.contains("555"), "{:?}", d.new_text);
}

/// HTML-only mail gives the same new text as plain-text mail: every
/// plain-text fixture, rewritten as the HTML-only mail of three clients
/// (Gmail's `<div>`s, Outlook's `MsoNormal` paragraphs, Apple Mail's
/// `<div>`s with a `cite` blockquote), still matches what the person
/// wrote, sign-off and signature removed as in the plain text.
#[test]
fn html_only_twins_of_plain_text_mail_match_what_the_person_wrote() {
    use edesk::inbound::eval::similarity;
    use edesk::inbound::{extract, parse};
    fn esc(l: &str) -> String {
        l.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('\u{a0}', "&nbsp;")
    }
    /// The lines as the client's HTML: runs of `>` lines become a
    /// blockquote where they stand (inline and bottom-posted answers).
    fn html(text: &str, style: &str) -> String {
        let para = |l: &str| match (style, l.trim().is_empty()) {
            ("outlook", true) => "<p class=MsoNormal><o:p>&nbsp;</o:p></p>".to_string(),
            ("outlook", false) => format!("<p class=MsoNormal>{}<o:p></o:p></p>", esc(l)),
            (_, true) => "<div><br></div>".to_string(),
            (_, false) => format!("<div>{}</div>", esc(l)),
        };
        let (open, close) = match style {
            "gmail" => (
                "<div class=\"gmail_quote\"><blockquote class=\"gmail_quote\" style=\"margin:0px 0px 0px 0.8ex\">",
                "</blockquote></div>",
            ),
            "outlook" => ("<blockquote style=\"margin-left:15pt\">", "</blockquote>"),
            _ => ("<div><br><blockquote type=\"cite\">", "</blockquote></div>"),
        };
        let mut body = String::new();
        let mut quoting = false;
        for l in text.lines() {
            let quoted = l.trim_start().starts_with('>');
            if quoted != quoting {
                body.push_str(if quoted { open } else { close });
                quoting = quoted;
            }
            if quoted {
                body.push_str(&format!(
                    "{}<br>",
                    esc(l.trim_start().trim_start_matches(['>', ' ']))
                ));
            } else {
                body.push_str(&para(l));
            }
        }
        if quoting {
            body.push_str(close);
        }
        match style {
            "gmail" => format!("<div dir=\"ltr\">{body}</div>"),
            "outlook" => format!(
                "<html><head><style><!-- p.MsoNormal {{margin:0cm}} --></style></head><body lang=FR><div class=WordSection1>{body}</div></body></html>"
            ),
            _ => format!(
                "<html><head></head><body style=\"word-wrap: break-word;\">{body}</body></html>"
            ),
        }
    }
    let mut failures = Vec::new();
    let mut total = 0;
    for f in eml_files(&dir()).unwrap() {
        let expected = f.with_extension("expected.txt");
        let Ok(expected) = std::fs::read_to_string(&expected) else {
            continue;
        };
        let p = parse::parse(&std::fs::read(&f).unwrap()).unwrap();
        let (Some(text), None) = (p.text.as_deref(), p.html.as_deref()) else {
            continue;
        };
        for style in ["gmail", "outlook", "apple"] {
            total += 1;
            let got = extract::new_text(None, Some(&html(text, style)), p.from_name.as_deref());
            if similarity(&got, &expected) < 0.9 {
                failures.push(format!("{} ({style}): {got:?}", f.display()));
            }
        }
    }
    assert!(total >= 60, "{total}");
    assert!(
        failures.is_empty(),
        "{}/{total}:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Route accuracy on the routing set's dev part, with the real FAQ. The
/// held-out part is scored by `edesk mail route-eval` only (README).
#[test]
fn routing_dev_set_accuracy_floor() {
    use edesk::inbound::adapters::EngineOracle;
    use edesk::inbound::eval::{Learned, evaluate_routes, load_route_cases};
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let routing = root.join("tests/fixtures/routing");
    let data = tempfile::tempdir().unwrap();
    let engine = edesk::faq::Engine::open(
        &edesk::faq::Sources::Dir(root.join("faq-index")),
        data.path(),
        0.5,
    )
    .unwrap();
    let oracle = EngineOracle {
        engine: std::sync::Arc::new(engine),
        threshold: edesk::config::Config::default().inbound.faq_threshold,
    };
    let w =
        MemWorld::from_json(&std::fs::read_to_string(routing.join("world.json")).unwrap()).unwrap();
    let cases = load_route_cases(&routing.join("dev.jsonl")).unwrap();
    assert!(cases.len() >= 100, "{}", cases.len());
    let report = evaluate_routes(&cases, &w, &oracle, Learned::Unseen).unwrap();
    println!("{}", report.summary());
    // Every case's outcome is kept (`route-eval --cases`), agreeing with
    // the score and the failures.
    assert_eq!(report.cases.len(), cases.len());
    assert_eq!(report.cases.iter().filter(|c| c.ok).count(), report.correct);
    assert!(report.cases.iter().all(|c| !c.reasons.is_empty()));
    let failed: Vec<_> = report
        .cases
        .iter()
        .filter(|c| !c.ok)
        .map(|c| &c.id)
        .collect();
    let listed: Vec<_> = report.failures.iter().map(|f| &f.id).collect();
    assert_eq!(failed, listed);
    assert!(report.accuracy >= 0.93, "{}", report.summary());
    for (class, sc) in &report.per_class {
        assert!(
            sc.share >= 0.8,
            "{class}: {:.3}\n{}",
            sc.share,
            report.summary()
        );
    }
}

/// The routing classifier's shipped examples (`faq-index/routing-train.jsonl`)
/// are the labelled routing sets: every case that routes to the FAQ or a
/// team is there once, with its first accepted outcome as class, and
/// nothing else is (mail commands never reach it). A new set is exported with `edesk mail route-eval
/// --export-training` (README).
#[test]
fn the_routing_classifier_is_trained_on_every_labelled_set() {
    use edesk::inbound::eval::load_route_cases;
    use edesk::inbound::route::learned::{FAQ, parse_examples};
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shipped = parse_examples(
        &std::fs::read_to_string(root.join("faq-index/routing-train.jsonl")).unwrap(),
    )
    .unwrap();
    let mut want = std::collections::BTreeMap::new();
    for e in std::fs::read_dir(root.join("tests/fixtures/routing")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "jsonl") {
            for c in load_route_cases(&p).unwrap() {
                // A mail command never reaches the classifier.
                if c.expect.iter().any(|e| e.starts_with("command:")) {
                    continue;
                }
                let first = c.expect[0].clone();
                let label = match first.strip_prefix("faq:") {
                    Some(entry) => (FAQ.to_string(), Some(entry.to_string())),
                    None => (first, None),
                };
                assert!(want.insert(c.id.clone(), label).is_none(), "{} twice", c.id);
            }
        }
    }
    let got: std::collections::BTreeMap<_, _> = shipped
        .iter()
        .map(|e| (e.id.clone(), (e.label.clone(), e.entry.clone())))
        .collect();
    assert_eq!(got.len(), shipped.len(), "an id is shipped twice");
    let missing: Vec<_> = want.keys().filter(|k| !got.contains_key(*k)).collect();
    let stray: Vec<_> = got.keys().filter(|k| !want.contains_key(*k)).collect();
    assert!(
        missing.is_empty() && stray.is_empty(),
        "missing {missing:?}, stray {stray:?}"
    );
    let relabelled: Vec<_> = want.iter().filter(|(k, v)| got[*k] != **v).collect();
    assert!(relabelled.is_empty(), "{relabelled:?}");
    assert!(shipped.iter().all(|e| !e.view.text.trim().is_empty()));
}
