//! Black-box tests of the mail module: templates render the facts they are given, missing
//! context and missing parts are reported, and mails arrive intact at a loopback SMTP sink or
//! in the outbox directory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use gradsign::mail::test_support::SmtpSink;
use gradsign::mail::{MailConfig, MailError, Mailer, RenderedMail, Templates};
use mail_parser::{MessageParser, MimeHeaders};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(10);

fn template_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("templates/email")
}

fn templates() -> Templates {
    Templates::load(&template_dir()).expect("templates load")
}

fn common() -> Value {
    json!({
        "recipient_name": "张三",
        "case_url": "https://jy.example.edu.cn/cases/0192-abc",
        "case_id": "0192-abc",
        "workflow_title": "线上签约",
        "student_name": "张三",
        "employer_name": "华为技术有限公司",
        "school_name": "北京大学",
        "platform_name": "就业签约平台",
        "recipient_role": "student",
    })
}

fn with(extra: Value) -> Value {
    let mut ctx = common();
    ctx.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    ctx
}

/// A sample context per mail, and the facts that must appear in both bodies.
fn samples() -> Vec<(&'static str, Value, Vec<&'static str>)> {
    let url = "https://jy.example.edu.cn/cases/0192-abc";
    vec![
        (
            "invitation_received",
            with(json!({"position": "软件开发工程师", "deadline": "2025-06-30 17:00"})),
            vec!["华为技术有限公司", "软件开发工程师", "2025-06-30 17:00", url],
        ),
        (
            "invitation_expiring",
            with(json!({"position": "软件开发工程师", "deadline": "2025-06-30 17:00", "hours_left": 5})),
            vec!["华为技术有限公司", "2025-06-30 17:00", "5 小时", "5 hours", url],
        ),
        (
            "invitation_expired",
            with(json!({"recipient_name": "人力资源部", "deadline": "2025-06-30 17:00"})),
            vec!["张三", "2025-06-30 17:00", url],
        ),
        (
            "invitation_rejected",
            with(json!({"recipient_name": "人力资源部", "position": "测试工程师"})),
            vec!["张三", "测试工程师", url],
        ),
        (
            "agreement_confirmed",
            with(json!({"agreement_number": "XY-2025-000123"})),
            vec!["张三", "华为技术有限公司", "XY-2025-000123", url],
        ),
        (
            "review_approved",
            with(json!({})),
            vec!["张三", "华为技术有限公司", "北京大学", url],
        ),
        (
            "review_rejected",
            with(json!({"reason": "协议书第二页未加盖单位公章"})),
            vec!["张三", "协议书第二页未加盖单位公章", url],
        ),
        (
            "review_pending",
            with(json!({"recipient_name": "李明", "submitted_at": "2025-06-01 09:30"})),
            vec!["李明", "张三", "线上签约", "2025-06-01 09:30", url],
        ),
        (
            "review_overdue",
            with(
                json!({"recipient_name": "王主任", "submitted_at": "2025-06-01 09:30", "waited_hours": 73, "level": 2}),
            ),
            vec!["张三", "3 天", "3 days", "第 2 级", "level 2", url],
        ),
        (
            "daily_digest",
            json!({
            "recipient_name": "李明", "school_name": "北京大学", "count": 2, "platform_name": "就业签约平台", "recipient_role": "school_reviewer",
            "queue_url": "https://jy.example.edu.cn/reviews",
            "cases": [
                {"student_name": "张三", "workflow_title": "线上签约", "waiting_since": "2025-06-01 09:30", "case_url": "https://jy.example.edu.cn/cases/1"},
                {"student_name": "李四", "workflow_title": "其他去向登记", "waiting_since": "2025-06-02 14:00", "case_url": "https://jy.example.edu.cn/cases/2"},
            ]}),
            vec![
                "张三",
                "李四",
                "其他去向登记",
                "2025-06-01 09:30",
                "https://jy.example.edu.cn/cases/2",
                "https://jy.example.edu.cn/reviews",
            ],
        ),
        (
            "agreement_amended",
            with(json!({"changes": [
                {"field": "terms.position", "label_zh": "工作岗位", "label_en": "position", "old": "软件工程师", "new": "后端开发工程师"},
                {"field": "terms.salary", "label_zh": "薪酬", "label_en": "pay", "old": "—", "new": "每月 9,000 元"},
            ]})),
            vec!["华为技术有限公司", "软件工程师", "后端开发工程师", "每月 9,000 元", url],
        ),
        (
            "termination_requested",
            with(
                json!({"recipient_role": "student", "agreement_number": "XY-2025-000123",
                "data": {"termination": {"requested_by": "employer", "reason": "岗位撤销"}}}),
            ),
            vec!["华为技术有限公司", "岗位撤销", "XY-2025-000123", url],
        ),
        (
            "destination_withdrawn",
            with(json!({"agreement_number": "XY-2025-000123"})),
            vec!["张三", "华为技术有限公司", "XY-2025-000123", url],
        ),
        (
            "change_returned",
            with(
                json!({"transition_title": "解约审核退回", "transition_title_en": "return the termination with a reason",
                "reason": "解约函未加盖公章"}),
            ),
            vec!["张三", "解约函未加盖公章", url],
        ),
    ]
}

#[test]
fn every_mail_has_a_sample_and_every_sample_renders_its_facts_in_both_bodies() {
    let templates = templates();
    let names: Vec<&str> = samples().iter().map(|s| s.0).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(templates.names(), sorted);
    for (name, ctx, facts) in samples() {
        let mail = templates.render(name, &ctx).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(mail.subject.starts_with("【就业签约】"), "{name}: {}", mail.subject);
        assert!(
            mail.subject.contains(" / "),
            "{name}: subject is bilingual: {}",
            mail.subject
        );
        assert!(!mail.subject.contains('\n'));
        for fact in facts {
            assert!(mail.text.contains(fact), "{name}: text lacks {fact:?}:\n{}", mail.text);
            assert!(mail.html.contains(fact), "{name}: html lacks {fact:?}:\n{}", mail.html);
        }
        // Chinese comes before English in both bodies.
        for body in [&mail.text, &mail.html] {
            let zh = body.find("您好").expect("chinese greeting");
            let en = body.find("Dear ").expect("english greeting");
            assert!(zh < en, "{name}: chinese first");
        }
        assert!(mail.html.starts_with("<!DOCTYPE html>"), "{name}");
    }
}

#[test]
fn html_body_escapes_context_but_text_body_does_not() {
    let ctx = with(json!({"reason": "<b>公章</b> & 签字"}));
    let mail = templates().render("review_rejected", &ctx).unwrap();
    assert!(
        mail.html.contains("&lt;b&gt;公章&lt;&#x2F;b&gt; &amp; 签字")
            || mail.html.contains("&lt;b&gt;公章&lt;/b&gt; &amp; 签字")
    );
    assert!(mail.text.contains("<b>公章</b> & 签字"));
}

#[test]
fn removing_a_required_key_fails_naming_the_variable_and_the_template() {
    let templates = templates();
    for (name, ctx, _) in samples() {
        for key in ctx.as_object().unwrap().keys() {
            let mut smaller = ctx.clone();
            smaller.as_object_mut().unwrap().remove(key);
            match templates.render(name, &smaller) {
                Ok(_) => {} // an optional key, or one this mail does not print
                Err(MailError::MissingVariable { template, variable }) => {
                    assert!(template.starts_with(name), "{template}");
                    assert!(
                        variable == *key || variable.starts_with(&format!("{key}.")),
                        "{variable} vs {key}"
                    );
                }
                Err(other) => panic!("{name} without {key}: {other}"),
            }
        }
    }
    let mut ctx = samples().remove(6).1; // review_rejected
    ctx.as_object_mut().unwrap().remove("reason");
    let err = templates.render("review_rejected", &ctx).unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("`reason`") && message.contains("review_rejected"),
        "{message}"
    );
}

#[test]
fn common_keys_are_required_where_printed() {
    for key in ["case_url", "recipient_name", "school_name", "case_id"] {
        let mut ctx = samples().remove(0).1;
        ctx.as_object_mut().unwrap().remove(key);
        let err = templates().render("invitation_received", &ctx).unwrap_err();
        assert!(
            matches!(&err, MailError::MissingVariable { variable, .. } if variable == key),
            "{key}: {err}"
        );
    }
}

#[test]
fn durations_are_rounded_the_way_a_person_says_them() {
    let t = templates();
    let expiring = |hours: f64| {
        let ctx = with(json!({"position": "工程师", "deadline": "2025-06-30 17:00", "hours_left": hours}));
        t.render("invitation_expiring", &ctx).unwrap().text
    };
    for (hours, zh, en) in [
        (0.5, "不到 1 小时", "less than an hour"),
        (1.2, "1 小时", "1 hour"),
        (5.6, "6 小时", "6 hours"),
        (19.4, "19 小时", "19 hours"),
        (23.98, "1 天", "1 day"),
        (36.0, "2 天", "2 days"),
        (71.0, "3 天", "3 days"),
    ] {
        let text = expiring(hours);
        assert!(text.contains(&format!("约 {zh}")), "{hours}: {text}");
        assert!(text.contains(&format!("about {en}.")), "{hours}: {text}");
    }
}

#[test]
fn school_staff_are_asked_to_review_and_pointed_to_the_platform() {
    let t = templates();
    let ctx = |role: &str| with(json!({"agreement_number": "2025-10212-000001", "recipient_role": role}));
    let reviewer = t.render("agreement_confirmed", &ctx("school_reviewer")).unwrap();
    let employer = t.render("agreement_confirmed", &ctx("employer")).unwrap();
    for body in [&reviewer.text, &reviewer.html] {
        assert!(body.contains("等待您审核") && !body.contains("另行通知"), "{body}");
        assert!(body.contains("平台管理员") && !body.contains("就业指导中心"), "{body}");
        assert!(body.contains("本邮件由就业签约平台自动发送"), "{body}");
    }
    for body in [&employer.text, &employer.html] {
        assert!(
            body.contains("另行通知") && body.contains("北京大学就业指导中心"),
            "{body}"
        );
    }
}

#[test]
fn unknown_mail_and_non_object_context_are_errors() {
    let t = templates();
    assert!(matches!(t.render("nope", &common()), Err(MailError::UnknownMail(_))));
    assert!(matches!(
        t.render("review_approved", &json!([1])),
        Err(MailError::ContextNotObject(_))
    ));
}

fn copy_templates_to(dir: &Path) {
    for entry in std::fs::read_dir(template_dir()).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
    }
}

#[test]
fn a_template_dir_missing_a_part_is_reported_with_the_file_expected() {
    let dir = tempfile::tempdir().unwrap();
    copy_templates_to(dir.path());
    std::fs::remove_file(dir.path().join("review_pending.txt.tera")).unwrap();
    let err = Templates::load(dir.path()).unwrap_err();
    match &err {
        MailError::MissingPart { mail, part, expected } => {
            assert_eq!((mail.as_str(), *part), ("review_pending", "text"));
            assert!(expected.ends_with("review_pending.txt.tera"));
        }
        other => panic!("unexpected {other}"),
    }
    assert!(err.to_string().contains("review_pending.txt.tera"), "{err}");
    assert!(!err.is_transient());
}

#[test]
fn a_template_that_does_not_parse_or_is_misnamed_is_reported_by_file() {
    let dir = tempfile::tempdir().unwrap();
    copy_templates_to(dir.path());
    std::fs::write(dir.path().join("review_pending.subject.tera"), "{{ student_name ").unwrap();
    let err = Templates::load(dir.path()).unwrap_err();
    assert!(
        matches!(&err, MailError::TemplateSyntax { path, .. } if path.ends_with("review_pending.subject.tera")),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    copy_templates_to(dir.path());
    std::fs::write(dir.path().join("review_pending.text.tera"), "hi").unwrap();
    let err = Templates::load(dir.path()).unwrap_err();
    assert!(err.to_string().contains("review_pending.text.tera"), "{err}");
}

fn rendered() -> RenderedMail {
    let (name, ctx, _) = samples().remove(0);
    templates().render(name, &ctx).unwrap()
}

fn config(sink: Option<&SmtpSink>, outbox: &Path) -> MailConfig {
    MailConfig {
        smtp: sink.map(|s| s.smtp_config()),
        from: "北京大学就业指导中心 <jobs@pku.example.edu.cn>".into(),
        reply_to: Some("就业指导中心 <career@pku.example.edu.cn>".into()),
        outbox_dir: outbox.to_owned(),
    }
}

fn recipients() -> Vec<(String, String)> {
    vec![
        ("张三".into(), "zhangsan@stu.example.edu.cn".into()),
        ("".into(), "cc@example.com".into()),
    ]
}

/// Checks what a recipient's mail program would show.
fn assert_decodes(raw: &[u8], mail: &RenderedMail, message_id: &str) {
    let parsed = MessageParser::default().parse(raw).expect("parses");
    assert_eq!(parsed.subject(), Some(mail.subject.as_str()));
    let to: Vec<_> = parsed
        .to()
        .unwrap()
        .iter()
        .map(|a| (a.name().unwrap_or(""), a.address().unwrap()))
        .collect();
    assert_eq!(
        to,
        vec![("张三", "zhangsan@stu.example.edu.cn"), ("", "cc@example.com")]
    );
    let from = parsed.from().unwrap().first().unwrap();
    assert_eq!(from.name(), Some("北京大学就业指导中心"));
    assert_eq!(
        parsed.reply_to().unwrap().first().unwrap().address(),
        Some("career@pku.example.edu.cn")
    );
    assert_eq!(parsed.message_id(), Some(message_id));
    assert!(parsed.date().is_some(), "has a Date");
    assert!(parsed.content_type().unwrap().subtype() == Some("alternative"));
    // SMTP puts CRLF at every line end; compare the text, not the line-end convention.
    let lf = |s: &str| s.replace("\r\n", "\n").trim_end().to_owned();
    assert_eq!(lf(&parsed.body_text(0).unwrap()), lf(&mail.text));
    assert_eq!(lf(&parsed.body_html(0).unwrap()), lf(&mail.html));
    // Non-ASCII headers go out encoded (RFC 2047), never as raw UTF-8.
    let head = &raw[..raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap()];
    assert!(head.is_ascii(), "headers are ASCII");
    assert!(String::from_utf8_lossy(head).contains("=?utf-8?"));
}

#[tokio::test]
async fn a_mail_sent_over_smtp_arrives_with_recipients_subject_parts_message_id_and_date() {
    let sink = SmtpSink::start().await.unwrap();
    let outbox = tempfile::tempdir().unwrap();
    let mailer = Mailer::new(&config(Some(&sink), outbox.path())).unwrap();
    let mail = rendered();
    mailer
        .send(&recipients(), &mail, "case-0192/invitation_received/1")
        .await
        .unwrap();
    let received = sink.wait_for(1, WAIT).await.unwrap();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].mail_from, "jobs@pku.example.edu.cn");
    assert_eq!(
        received[0].rcpt_to,
        vec!["zhangsan@stu.example.edu.cn", "cc@example.com"]
    );
    assert_decodes(
        &received[0].data,
        &mail,
        "case-0192=2Finvitation_received=2F1@pku.example.edu.cn",
    );
}

#[tokio::test]
async fn resending_with_the_same_key_gives_the_same_message_id() {
    let sink = SmtpSink::start().await.unwrap();
    let outbox = tempfile::tempdir().unwrap();
    let mailer = Mailer::new(&config(Some(&sink), outbox.path())).unwrap();
    let mail = rendered();
    mailer.send(&recipients(), &mail, "k1").await.unwrap();
    mailer.send(&recipients(), &mail, "k1").await.unwrap();
    let received = sink.wait_for(2, WAIT).await.unwrap();
    let ids: Vec<_> = received
        .iter()
        .map(|m| {
            MessageParser::default()
                .parse(&m.data)
                .unwrap()
                .message_id()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(ids, vec!["k1@pku.example.edu.cn"; 2]);
}

#[tokio::test]
async fn the_file_transport_writes_a_parseable_eml_named_after_the_message_id() {
    let outbox = tempfile::tempdir().unwrap();
    let mailer = Mailer::new(&config(None, outbox.path())).unwrap();
    let mail = rendered();
    mailer
        .send(&recipients(), &mail, "case-0192/invitation_received/1")
        .await
        .unwrap();
    let path = outbox.path().join("case-0192=2Finvitation_received=2F1.eml");
    assert_eq!(
        mailer.outbox_path("case-0192/invitation_received/1"),
        Some(path.clone())
    );
    let raw = std::fs::read(&path).unwrap();
    assert_decodes(&raw, &mail, "case-0192=2Finvitation_received=2F1@pku.example.edu.cn");
    let files: Vec<_> = std::fs::read_dir(outbox.path()).unwrap().collect();
    assert_eq!(files.len(), 1, "no partial file left behind");
}

#[tokio::test]
async fn a_451_is_transient_and_a_550_is_not() {
    let sink = SmtpSink::start().await.unwrap();
    let outbox = tempfile::tempdir().unwrap();
    let mailer = Mailer::new(&config(Some(&sink), outbox.path())).unwrap();
    let mail = rendered();

    sink.fail_next_data(1, 451);
    let err = mailer.send(&recipients(), &mail, "m1").await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert_eq!(err.smtp_code(), Some(451));
    // The retry goes through.
    mailer.send(&recipients(), &mail, "m1").await.unwrap();
    sink.wait_for(1, WAIT).await.unwrap();

    sink.fail_next_data(1, 550);
    let err = mailer.send(&recipients(), &mail, "m2").await.unwrap_err();
    assert!(!err.is_transient(), "{err}");
    assert_eq!(err.smtp_code(), Some(550));
    assert_eq!(sink.count(), 1);
}

#[tokio::test]
async fn a_refused_connection_is_transient() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let outbox = tempfile::tempdir().unwrap();
    let mut cfg = config(None, outbox.path());
    cfg.smtp = Some(gradsign::mail::SmtpConfig {
        host: "127.0.0.1".into(),
        port,
        security: gradsign::mail::Security::None,
        username: None,
        password: None,
    });
    let err = Mailer::new(&cfg)
        .unwrap()
        .send(&recipients(), &rendered(), "m")
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err}");
}

#[tokio::test]
async fn bad_addresses_and_empty_recipients_are_permanent() {
    let outbox = tempfile::tempdir().unwrap();
    let mailer = Mailer::new(&config(None, outbox.path())).unwrap();
    let bad = vec![("张三".to_owned(), "not an address".to_owned())];
    let err = mailer.send(&bad, &rendered(), "m").await.unwrap_err();
    assert!(matches!(err, MailError::Address { .. }) && !err.is_transient(), "{err}");
    let err = mailer.send(&[], &rendered(), "m").await.unwrap_err();
    assert!(matches!(err, MailError::NoRecipients) && !err.is_transient());
    let mut cfg = config(None, outbox.path());
    cfg.from = "nobody".into();
    assert!(matches!(Mailer::new(&cfg), Err(MailError::Config(_))));
}

#[tokio::test]
async fn the_sink_unstuffs_leading_dots_and_wait_for_times_out_without_mail() {
    let sink = SmtpSink::start().await.unwrap();
    let outbox = tempfile::tempdir().unwrap();
    let mailer = Mailer::new(&config(Some(&sink), outbox.path())).unwrap();
    let mail = RenderedMail {
        subject: "dots".into(),
        html: "<p>.x</p>".into(),
        text: ".leading dot\r\n..two\r\n.".into(),
    };
    mailer.send(&recipients(), &mail, "dots").await.unwrap();
    let received = sink.wait_for(1, WAIT).await.unwrap();
    let parsed = MessageParser::default().parse(&received[0].data).unwrap();
    assert_eq!(parsed.body_text(0).unwrap().trim_end(), ".leading dot\r\n..two\r\n.");
    let err = sink.wait_for(2, Duration::from_millis(50)).await.unwrap_err();
    assert_eq!((err.wanted, err.got), (2, 1));
}
