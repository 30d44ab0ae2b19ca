use serde_json::json;

use super::*;
use crate::domain::parse_order;

pub(crate) fn notifier(dir: &Path) -> Notifier {
    let store = Store::open(dir).unwrap();
    let settings = MailSettings {
        domain: "edesk.example.com".into(),
        from_name: "eDelivery".into(),
        from_local: "edelivery".into(),
        public_url: "https://edesk.example.com".into(),
    };
    Notifier::from_parts(
        store,
        Templates::embedded().unwrap(),
        ServerKey::from_bytes([7; 32]),
        settings,
    )
}

fn sample(so: &str) -> Value {
    let mut v = cmd::sample_order(so, "j.harper@acme.example.com", Lang::En);
    v["recipients"][0]["name"] = json!("John <b>Harper</b>");
    v
}

#[test]
fn every_kind_renders_in_both_languages() {
    let dir = tempfile::tempdir().unwrap();
    let n = notifier(dir.path());
    let order = parse_order(&sample("10458321"), Utc::now().fixed_offset()).unwrap();
    for kind in Kind::ALL {
        for lang in Lang::ALL {
            let r = n.render_preview(kind, &order, lang).unwrap();
            assert_eq!(r.lang, lang);
            assert!(
                !r.subject.is_empty() && !r.subject.contains('\n'),
                "{kind} {lang}"
            );
            assert!(r.html.contains("</html>"), "{kind} {lang}");
            // The recipient name is user data: escaped in HTML, verbatim in text.
            assert!(
                r.html.contains("John &lt;b&gt;Harper&lt;&#x2F;b&gt;")
                    || r.html.contains("John &lt;b&gt;Harper&lt;/b&gt;"),
                "{kind} {lang}: {}",
                r.html
            );
            assert!(!r.html.contains("<b>Harper"), "{kind} {lang}");
            assert!(r.text.contains("John <b>Harper</b>"), "{kind} {lang}");
        }
    }
    let r = n
        .render_preview(Kind::OrderAvailable, &order, Lang::En)
        .unwrap();
    assert!(r.text.contains("9fb4c92d620d4be2a9f190e7fa6332b3"));
    assert!(r.text.contains("Register Product Authorization Key (PAK)"));
    assert!(r.html.contains("/orders/10458321/pak?t="));
    let fr = n
        .render_preview(Kind::OrderAvailable, &order, Lang::Fr)
        .unwrap();
    assert!(fr.subject.starts_with("Votre commande 10458321"));
}

#[test]
fn broken_template_names_the_file() {
    let err = Templates::from_sources(
        vec![(
            "en/order_available.html".to_string(),
            "{% if %}".to_string(),
        )],
        "templates".into(),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("templates/en/order_available.html"), "{err}");
    assert!(
        err.contains("order_available.html:1:"),
        "names the line: {err}"
    );
}

#[test]
fn french_falls_back_to_english_when_missing() {
    let sources = templates::embedded_sources()
        .into_iter()
        .filter(|(n, _)| !n.starts_with("fr/pak_reminder."));
    let t = Templates::from_sources(sources, "test".into()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let settings = MailSettings {
        domain: "edesk.example.com".into(),
        from_name: "eDelivery".into(),
        from_local: "edelivery".into(),
        public_url: "https://edesk.example.com".into(),
    };
    let n = Notifier::from_parts(store, t, ServerKey::from_bytes([1; 32]), settings);
    let order = parse_order(&sample("10458321"), Utc::now().fixed_offset()).unwrap();
    let r = n
        .render_preview(Kind::PakReminder, &order, Lang::Fr)
        .unwrap();
    assert_eq!(r.lang, Lang::En);
    assert!(r.subject.starts_with("Reminder"));
    assert_eq!(
        n.render_preview(Kind::OrderAvailable, &order, Lang::Fr)
            .unwrap()
            .lang,
        Lang::Fr
    );
}

#[test]
fn import_queues_once_and_records_skips() {
    let dir = tempfile::tempdir().unwrap();
    let n = notifier(dir.path());
    let mut v = sample("10458321");
    v["holds"] = json!([{"type": "export"}]);
    let r = n.import_value(&v, "test").unwrap();
    assert_eq!((r.imported.len(), r.queued, r.skipped), (1, 1, 1));
    let r = n.import_value(&v, "test").unwrap();
    assert_eq!((r.updated.len(), r.queued, r.skipped), (1, 0, 0));
    v["holds"][0]["released"] = json!(true);
    let r = n.import_value(&v, "test").unwrap();
    assert_eq!(r.queued, 2, "hold released + available");
    let so: OrderId = "10458321".parse().unwrap();
    let kinds: Vec<(String, String)> = n
        .history(&so)
        .unwrap()
        .into_iter()
        .map(|h| (h.entry.kind, h.status))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("order_on_hold".into(), "pending".into()),
            ("order_available".into(), "skipped".into()),
            ("hold_released".into(), "pending".into()),
            ("order_available".into(), "pending".into()),
        ]
    );
    // Threading lookups for inbound.
    let item = n.store().outbox_list(None).unwrap().pop().unwrap();
    assert_eq!(
        n.store().order_by_message_id(&item.message_id).unwrap(),
        Some(so.clone())
    );
    let token = ReplyToken::from_address(&item.envelope_from).unwrap();
    let target = n.store().order_by_token(&token).unwrap().unwrap();
    assert_eq!(target.so, Some(so.clone()));
    assert!(ReplyToken::verify(
        n.key(),
        &token,
        Some(&so),
        &target.email
    ));
    assert_eq!(n.store().orders_by_po("po-10458321").unwrap(), vec![so]);
}

/// What a store holds after an import: each order's notification history.
fn histories(n: &Notifier, sos: &[&str]) -> Vec<Vec<(String, String)>> {
    sos.iter()
        .map(|so| {
            n.history(&so.parse().unwrap())
                .unwrap()
                .into_iter()
                .map(|h| (h.entry.kind, h.status))
                .collect()
        })
        .collect()
}

/// An order held, another, the first released, a third: the first order
/// is named twice. Returns the steps and the three orders.
fn a_life_naming_one_order_twice() -> ([Value; 4], [&'static str; 3]) {
    let mut held = sample("10458321");
    held["holds"] = json!([{"type": "export"}]);
    let mut released = held.clone();
    released["holds"][0]["released"] = json!(true);
    let steps = [held, sample("10458322"), released, sample("10458323")];
    (steps, ["10458321", "10458322", "10458323"])
}

#[test]
fn one_batch_naming_an_order_twice_equals_two_imports() {
    let (steps, sos) = a_life_naming_one_order_twice();
    // The whole life in one request: the commits are pipelined, the
    // second 10458321 must still be planned on what the first wrote.
    // The store's owner is held up meanwhile, so no commit of the batch is
    // applied by chance before the order comes round again.
    let dir = tempfile::tempdir().unwrap();
    let batched = notifier(dir.path());
    let (release, stalled) = batched.store().stall_owner().unwrap();
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        release.send(())
    });
    let r = batched
        .import_value(&Value::Array(steps.to_vec()), "test")
        .unwrap();
    releaser.join().unwrap().unwrap();
    stalled.wait().unwrap();
    assert_eq!(r.imported.len(), 3);
    assert_eq!(r.updated, ["10458321"]);
    // One request per order.
    let dir2 = tempfile::tempdir().unwrap();
    let single = notifier(dir2.path());
    let mut queued = 0;
    for step in &steps {
        queued += single.import_value(step, "test").unwrap().queued;
    }
    assert_eq!(r.queued, queued);
    assert_eq!(histories(&batched, &sos), histories(&single, &sos));
    assert_eq!(
        histories(&batched, &sos)[0].len(),
        4,
        "on hold, available (skipped), released, available"
    );
}

#[test]
fn a_batch_larger_than_a_chunk_equals_one_import_per_order() {
    let (steps, sos) = a_life_naming_one_order_twice();
    let dir = tempfile::tempdir().unwrap();
    let single = notifier(dir.path());
    let mut queued = 0;
    for step in &steps {
        queued += single.import_value(step, "test").unwrap().queued;
    }
    let now = Utc::now().fixed_offset();
    // Chunks of 2 split the order named twice across two holds of the
    // lock; 1 and 3 put the boundary elsewhere.
    for chunk in [1, 2, 3] {
        let dir = tempfile::tempdir().unwrap();
        let chunked = notifier(dir.path());
        let orders = steps.iter().map(|v| parse_order(v, now).unwrap()).collect();
        let mut r = ImportReport::default();
        chunked
            .import_in_chunks(orders, "test", &mut r, chunk)
            .unwrap();
        assert_eq!(r.imported.len(), 3, "chunk {chunk}");
        assert_eq!(r.updated, ["10458321"], "chunk {chunk}");
        assert_eq!(r.queued, queued, "chunk {chunk}");
        assert_eq!(
            histories(&chunked, &sos),
            histories(&single, &sos),
            "chunk {chunk}"
        );
    }
}

#[test]
fn preferences_and_suppression_skip_with_reason() {
    let dir = tempfile::tempdir().unwrap();
    let n = notifier(dir.path());
    let email: EmailAddress = "j.harper@acme.example.com".parse().unwrap();
    n.store().set_preference(&email, None, false).unwrap();
    n.import_value(&sample("10000001"), "t").unwrap();
    n.store().set_preference(&email, None, true).unwrap();
    n.store().suppress(&email, "550 test").unwrap();
    n.import_value(&sample("10000002"), "t").unwrap();
    let reason = |so: &str| {
        n.history(&so.parse().unwrap()).unwrap()[0]
            .entry
            .skipped
            .clone()
    };
    assert_eq!(
        reason("10000001").as_deref(),
        Some("preference: no notifications")
    );
    assert_eq!(reason("10000002").as_deref(), Some("suppressed address"));
}

#[test]
fn enqueue_is_idempotent_and_threads() {
    let dir = tempfile::tempdir().unwrap();
    let n = notifier(dir.path());
    let mail = OutgoingMail {
        kind: Kind::EscalationAck,
        to: "Ana <ana@example.com>".parse().unwrap(),
        lang: Lang::Fr,
        so: None,
        extra: json!({"ticket": "T-42", "team": "licensing", "business_days": 1, "due": "2025-03-04"}),
        in_reply_to: Some("<abc@client.example>".parse().unwrap()),
        // A hostile reference never becomes a MessageId, so never a header.
        references: crate::domain::MessageId::parse_all([
            "<abc@client.example>",
            "bad\r\nBcc: x@y.z",
        ]),
        auto: AutoSubmitted::AutoReplied,
        idempotency_key: "inbound/<abc@client.example>/ack".into(),
        requested_by: "inbound".into(),
    };
    let first = n.enqueue(mail.clone()).unwrap();
    let EnqueueOutcome::Queued { outbox_id, .. } = first else {
        panic!("{first:?}")
    };
    assert_eq!(n.enqueue(mail).unwrap(), EnqueueOutcome::Duplicate);
    let raw = n.store().outbox_body(outbox_id).unwrap().unwrap();
    assert!(raw.contains("Auto-Submitted: auto-replied"), "{raw}");
    assert!(raw.contains("In-Reply-To: <abc@client.example>"));
    assert!(!raw.contains("Bcc"));
    assert!(
        !raw.contains("List-Unsubscribe"),
        "acknowledgements are not list mail"
    );
}

#[test]
fn an_escalation_names_every_order_and_po_the_customer_gave() {
    let dir = tempfile::tempdir().unwrap();
    let n = notifier(dir.path());
    let escalation = |key: &str, orders: Value, pos: Value| OutgoingMail {
        kind: Kind::TeamEscalation,
        to: "exportops@cisco.example".parse().unwrap(),
        lang: Lang::En,
        so: None,
        extra: json!({"ticket": "T-7", "team": "exportops", "business_days": 1,
            "due": "2026-12-04", "customer": "ana@acme.example", "text": "Held?",
            "reasons": "export hold", "orders": orders, "purchase_orders": pos}),
        in_reply_to: None,
        references: Vec::new(),
        auto: AutoSubmitted::AutoGenerated,
        idempotency_key: key.into(),
        requested_by: "desk".into(),
    };
    let body = |m: OutgoingMail| {
        let EnqueueOutcome::Queued { outbox_id, .. } = n.enqueue(m).unwrap() else {
            panic!("not queued")
        };
        n.store().outbox_body(outbox_id).unwrap().unwrap()
    };
    let raw = body(escalation(
        "esc/1",
        json!(["10458321", "10458400"]),
        json!(["4500099887"]),
    ));
    assert!(raw.contains("Orders named: 10458321, 10458400"), "{raw}");
    assert!(raw.contains("PO numbers named: 4500099887"), "{raw}");
    // One order: the order block says it; no list repeats it.
    let raw = body(escalation("esc/2", json!(["10458321"]), json!([])));
    assert!(!raw.contains("Orders named"), "{raw}");
    assert!(!raw.contains("PO numbers named"), "{raw}");
}
