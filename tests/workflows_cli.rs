//! `gradsign workflows check` and `graph` as an administrator runs them: broken copies
//! of the online signing definition are refused with the file, the line and the
//! problem in plain words.

use std::{path::Path, process::Command};

const BIN: &str = env!("CARGO_BIN_EXE_gradsign");

fn original() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows/online_signing.toml")).unwrap()
}

/// Writes `source` as `online_signing.toml` in a fresh folder and checks it.
fn check(source: &str) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("online_signing.toml");
    std::fs::write(&file, source).unwrap();
    let out = Command::new(BIN)
        .args(["workflows", "check"])
        .arg(&file)
        .output()
        .unwrap();
    let file = file.display().to_string();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        file,
    )
}

/// The 1-based line of the first occurrence of `needle` in `source`.
fn line_of(source: &str, needle: &str) -> usize {
    source[..source
        .find(needle)
        .unwrap_or_else(|| panic!("{needle} not in the definition"))]
        .matches('\n')
        .count()
        + 1
}

#[test]
fn the_shipped_definitions_pass() {
    let out = Command::new(BIN)
        .args(["workflows", "check"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("online_signing.toml: ok"));
}

#[test]
fn an_unknown_state_is_named_with_its_line() {
    let broken = original().replace(
        "from = [\"confirming\"]\nto = \"submitted\"",
        "from = [\"confirming\"]\nto = \"submited\"",
    );
    let (ok, err, file) = check(&broken);
    assert!(!ok);
    let line = line_of(&broken, "to = \"submited\"");
    assert!(
        err.contains(&format!(
            "{file}:{line}: transition `confirm` goes to unknown state `submited`"
        )),
        "{err}"
    );
}

#[test]
fn an_unreachable_state_is_named_with_its_line() {
    let broken = original().replace(
        "[states.withdrawn]",
        "[states.archived]\ntitle = \"归档\"\nterminal = true\n\n[states.withdrawn]",
    );
    let (ok, err, file) = check(&broken);
    assert!(!ok);
    let line = line_of(&broken, "[states.archived]");
    assert!(
        err.contains(&format!("{file}:{line}: state `archived` is unreachable")),
        "{err}"
    );
}

#[test]
fn a_bad_duration_is_named_with_its_line() {
    let broken = original().replace("invitation_valid_for = \"7d\"", "invitation_valid_for = \"7 days\"");
    let (ok, err, file) = check(&broken);
    assert!(!ok);
    let line = line_of(&broken, "invitation_valid_for = \"7 days\"");
    assert!(
        err.contains(&format!(
            "{file}:{line}: param `invitation_valid_for` (the default_after of field `deadline`) is not a duration"
        )),
        "{err}"
    );
}

#[test]
fn an_undeclared_role_is_named_with_its_line() {
    let broken = original().replace(
        "by = [\"school_reviewer\", \"school_admin\"]",
        "by = [\"school_reviewer\", \"dean\"]",
    );
    let (ok, err, file) = check(&broken);
    assert!(!ok);
    let line = line_of(&broken, "\"dean\"");
    assert!(
        err.contains(&format!(
            "{file}:{line}: transition `approve` names undeclared role `dean`; declared roles: employer, platform_admin, school_admin, school_reviewer, student (and `system`)"
        )),
        "{err}"
    );
}

#[test]
fn a_role_is_declared_with_an_identity_and_a_scope_it_can_reach() {
    let broken = original().replace(
        "student = { title = \"学生 / student\", identity = \"student\", scope = \"student\" }",
        "student = { title = \"学生 / student\", identity = \"student\", scope = \"college\" }\n\
         dean = { title = \"院长 / dean\", identity = \"dean\", scope = \"college\" }\n\
         system = { title = \"系统 / system\", identity = \"platform_admin\", scope = \"platform\" }",
    );
    let (ok, err, file) = check(&broken);
    assert!(!ok);
    let line = line_of(&broken, "scope = \"college\" }");
    assert!(
        err.contains(&format!(
            "{file}:{line}: role `student`: a `student` token cannot reach scope `college`; it reaches: student"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("{file}:{}: role `dean` has unknown identity `dean`", line + 1)),
        "{err}"
    );
    assert!(
        err.contains(&format!("{file}:{}: role `system` is the engine's own", line + 2)),
        "{err}"
    );
}

#[test]
fn a_timer_firing_a_transition_that_does_not_leave_its_state_is_refused() {
    let broken = original().replacen(
        "{ at = \"deadline\", fire = \"expire\" }",
        "{ at = \"deadline\", fire = \"confirm\" }",
        1,
    );
    let (ok, err, _) = check(&broken);
    assert!(!ok);
    assert!(err.contains("fires `confirm`, which does not leave `invited`"), "{err}");
}

#[test]
fn a_state_with_no_exit_by_a_party_or_a_timer_is_refused_with_its_line() {
    // A new state the school can send a case to, and nothing leaves.
    let on_hold = "[states.on_hold]\ntitle = \"暂缓 / on hold\"\nclaims = [\"destination\"]\n\n[states.withdrawn]";
    let hold =
        "\n[[transitions]]\nname = \"hold\"\nfrom = [\"submitted\"]\nto = \"on_hold\"\nby = \"school_reviewer\"\n";
    let broken = original().replace("[states.withdrawn]", on_hold) + hold;
    let (ok, err, file) = check(&broken);
    assert!(!ok);
    let line = line_of(&broken, "[states.on_hold]");
    assert!(
        err.contains(&format!(
            "{file}:{line}: state `on_hold` has no way out by a party or a timer"
        )),
        "{err}"
    );

    // Left only by the platform admin's intervention: still nobody's way out.
    let release = "\n[[transitions]]\nname = \"unhold\"\nfrom = [\"on_hold\"]\nto = \"voided\"\nby = \"platform_admin\"\ninput = [{ form = \"intervention\" }]\n";
    let (ok, err, _) = check(&(broken.clone() + release));
    assert!(!ok);
    assert!(
        err.contains("state `on_hold` has no way out by a party or a timer"),
        "{err}"
    );

    // A timer of its own that fires a system transition out of it is a way out.
    let timed = broken.replace(
        "title = \"暂缓 / on hold\"",
        "title = \"暂缓 / on hold\"\ntimers = [{ after = \"5d\", fire = \"resume\" }]",
    ) + "\n[[transitions]]\nname = \"resume\"\nfrom = [\"on_hold\"]\nto = \"submitted\"\nby = \"system\"\n";
    let (ok, err, _) = check(&timed);
    assert!(ok, "{err}");
}

#[test]
fn a_condition_with_an_unknown_name_is_refused() {
    let broken = original().replacen(
        "when = \"!employer.receives_archive\"",
        "when = \"!employr.receives_archive\"",
        1,
    );
    let (ok, err, _) = check(&broken);
    assert!(!ok);
    assert!(err.contains("uses unknown name `employr`"), "{err}");
}

/// Asserts that `broken` is refused with `message` on the line of `needle`.
fn refused_at(broken: &str, needle: &str, message: &str) {
    let (ok, err, file) = check(broken);
    assert!(!ok, "accepted: {message}");
    let line = line_of(broken, needle);
    assert!(
        err.contains(&format!("{file}:{line}: {message}")),
        "wanted line {line}: {message}\n{err}"
    );
}

#[test]
fn a_condition_that_is_not_boolean_is_refused_with_its_line() {
    // The case: `!` of a bool is a bool, and a bool is not ordered against a number.
    let broken = original().replacen(
        "when = \"!employer.receives_archive\"",
        "when = \"!employer.receives_archive > 1\"",
        1,
    );
    refused_at(
        &broken,
        "!employer.receives_archive > 1",
        "condition `!employer.receives_archive > 1` orders a bool against a int",
    );
    // A condition that computes a string is no condition.
    let broken = original().replacen("when = \"!employer.receives_archive\"", "when = \"employer.name\"", 1);
    refused_at(
        &broken,
        "when = \"employer.name\"",
        "condition `employer.name` is of type string, not a condition",
    );
    // `!` of a string.
    let broken = original().replacen("when = \"!employer.receives_archive\"", "when = \"!employer.name\"", 1);
    refused_at(
        &broken,
        "when = \"!employer.name\"",
        "condition `!employer.name` applies `!` to a string",
    );
}

#[test]
fn a_condition_naming_an_undeclared_field_is_refused_with_the_names_it_knows() {
    let broken = original().replacen(
        "when = \"!employer.receives_archive\"",
        "when = \"!employer.receives_archives\"",
        1,
    );
    refused_at(
        &broken,
        "receives_archives",
        "condition `!employer.receives_archives` uses unknown name `employer.receives_archives`; `employer` has: address, contact,",
    );
    // Case data is typed by the forms: a field no form declares is unknown.
    let broken = original().replace(
        "actor.role != data.termination.requested_by\", message = { zh = \"解约须由另一方同意\"",
        "actor.role != data.termination.asked_by\", message = { zh = \"解约须由另一方同意\"",
    );
    let (ok, err, _) = check(&broken);
    assert!(!ok);
    assert!(
        err.contains("uses unknown name `data.termination.asked_by`; `data.termination` has: reason, requested_by"),
        "{err}"
    );
    // A claim the definition does not declare.
    let broken = original().replace("!held_elsewhere.destination", "!held_elsewhere.destiny");
    let (ok, err, _) = check(&broken);
    assert!(!ok);
    assert!(err.contains("`held_elsewhere` has: destination, invitation"), "{err}");
}

#[test]
fn durations_are_bounded_and_never_panic_the_checker() {
    for absurd in [
        "99999999999999d",
        "100000000d",
        "3661d",
        "999999999999999999999999999999s",
    ] {
        let broken = original().replace(
            "review_reminder_after = \"2d\"",
            &format!("review_reminder_after = \"{absurd}\""),
        );
        let (ok, err, file) = check(&broken);
        assert!(!ok, "{absurd} accepted");
        // Exit 1 with problems, not a panic (101) with none.
        assert!(!err.contains("panicked"), "{err}");
        let line = line_of(&broken, "after = \"review_reminder_after\"");
        assert!(
            err.contains(&format!(
                "{file}:{line}: timer in `submitted`: `after = \"review_reminder_after\"` is neither a duration"
            )),
            "{absurd}: {err}"
        );
        assert!(err.contains("at most 3660d"), "{err}");
    }
}

#[test]
fn a_default_longer_than_the_maximum_is_refused_with_its_line() {
    let broken = original().replace("invitation_valid_for = \"7d\"", "invitation_valid_for = \"40d\"");
    refused_at(
        &broken,
        "{ name = \"deadline\", kind = \"deadline\"",
        "field `deadline`: its default (param `invitation_valid_for`, 40d) is longer than its maximum (param `invitation_valid_max`, 30d)",
    );
}

#[test]
fn a_reminder_whose_lead_is_not_shorter_than_its_period_is_refused_with_its_line() {
    // Reminding 7 days before a deadline that is 7 days away by default: due on entry.
    let broken = original().replace("invitation_remind_before = \"1d\"", "invitation_remind_before = \"7d\"");
    refused_at(
        &broken,
        "{ at = \"deadline\", before = \"invitation_remind_before\"",
        "timer in `invited`: its lead `before = \"invitation_remind_before\"` (7d) is not shorter than the period it reminds of (the default of deadline field `deadline`, 7d)",
    );
    let broken = original().replacen(
        "{ after = \"review_reminder_after\", email = \"review_pending\", to = \"school_reviewer\" }",
        "{ after = \"review_reminder_after\", before = \"3d\", email = \"review_pending\", to = \"school_reviewer\" }",
        1,
    );
    refused_at(
        &broken,
        "before = \"3d\"",
        "timer in `submitted`: its lead `before = \"3d\"` (3d) is not shorter than the period it reminds of (`after = \"review_reminder_after\"`, 2d)",
    );
}

#[test]
fn a_middle_state_that_drops_a_claim_is_refused_with_the_path() {
    // A new step between confirming (holds `destination`) and submitted (holds it): the
    // administrator forgot `claims = ["destination"]`, which would let another employer
    // take the student in the gap (R1).
    let signing = "[states.signing]\ntitle = \"签署中 / signing\"\n\n[states.withdrawn]";
    let broken = original().replace("[states.withdrawn]", signing).replace(
        "from = [\"confirming\"]\nto = \"submitted\"",
        "from = [\"confirming\"]\nto = \"signing\"",
    ) + "\n[[transitions]]\nname = \"sign\"\nfrom = [\"signing\"]\nto = \"submitted\"\nby = \"student\"\n";
    refused_at(
        &broken,
        "[states.signing]",
        "claim `destination` is held in `confirming` and again in `submitted`, but not in `signing` between them (path confirming → signing → submitted)",
    );
    // Holding it there is the fix.
    let fixed = broken.replace(
        "title = \"签署中 / signing\"",
        "title = \"签署中 / signing\"\nclaims = [\"destination\"]",
    );
    let (ok, err, _) = check(&fixed);
    assert!(ok, "{err}");
    // So is saying the release is meant; the shipped `rejected` state does just that.
    let released = original().replace("releases = [\"destination\"]\n", "");
    refused_at(
        &released,
        "[states.rejected]",
        "claim `destination` is held in `submitted` and again in `confirming`, but not in `rejected` between them (path submitted → rejected → confirming)",
    );
}

#[test]
fn templates_are_checked_against_the_templates_folder() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // A mail template whose files are missing is refused…
    let broken = original().replace(
        "on_enter = [{ email = \"invitation_received\", to = \"student\" }]",
        "on_enter = [{ email = \"invitation_greeting\", to = \"student\" }]",
    );
    refused_at(
        &broken,
        "invitation_greeting",
        "unknown mail template `invitation_greeting` (no `invitation_greeting.subject.tera`",
    );
    // …and accepted once its three files are in the templates folder, with no change to
    // the code.
    let templates = tempfile::tempdir().unwrap();
    copy_dir(&root.join("templates/email"), &templates.path().join("email"));
    std::fs::create_dir(templates.path().join("agreement")).unwrap();
    for name in ["agreement.typ", "termination_certificate.typ"] {
        std::fs::copy(
            root.join("templates/agreement").join(name),
            templates.path().join("agreement").join(name),
        )
        .unwrap();
    }
    for (part, text) in [("subject", "你好"), ("html", "<p>你好</p>"), ("txt", "你好")] {
        std::fs::write(
            templates.path().join(format!("email/invitation_greeting.{part}.tera")),
            text,
        )
        .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("online_signing.toml");
    std::fs::write(&file, &broken).unwrap();
    let out = Command::new(BIN)
        .args(["workflows", "check"])
        .arg(&file)
        .env("GRADSIGN_TEMPLATES_DIR", templates.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // A rendered slot naming a Typst template that is not there is refused.
    let broken = original().replace(
        "template = \"termination_certificate\"",
        "template = \"release_certificate\"",
    );
    refused_at(
        &broken,
        "template = \"release_certificate\"",
        "document `termination_certificate` names unknown template `release_certificate` (no `release_certificate.typ` in the templates folder)",
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[test]
fn a_toml_syntax_error_names_the_line() {
    let broken = original().replace("[states.expired]", "[states.expired");
    let (ok, err, file) = check(&broken);
    assert!(!ok);
    assert!(
        err.contains(&format!("{file}:{}:", line_of(&broken, "[states.expired"))),
        "{err}"
    );
}

#[test]
fn graph_prints_a_mermaid_diagram() {
    let out = Command::new(BIN)
        .args(["workflows", "graph", "online_signing"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("stateDiagram-v2"));
    assert!(
        text.contains("viewed --> expired: expire (system) at deadline"),
        "{text}"
    );
    assert!(text.contains("[*] --> invited: invite (employer)"));
}

/// `workflows publish|versions|graph NAME@HASH|diff` against a database (SQLite here).
#[test]
fn the_version_commands_publish_list_draw_and_diff_stored_versions() {
    let data = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("GRADSIGN_DATA_DIR", data.path().join("data"))
            .env("GRADSIGN_JWT_SECRET", "a-secret-for-the-version-commands-test")
            .env("GRADSIGN_LOG", "warn")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("online_signing.toml");

    // A broken file is refused with its own path and line, and nothing is stored.
    let broken = original().replacen(
        "when = \"!employer.receives_archive\"",
        "when = \"!employer.receives_archive > 1\"",
        1,
    );
    std::fs::write(&file, &broken).unwrap();
    let (ok, _, err) = run(&["workflows", "publish", file.to_str().unwrap()]);
    assert!(!ok);
    let line = line_of(&broken, "!employer.receives_archive > 1");
    assert!(err.contains(&format!("{}:{line}: condition", file.display())), "{err}");

    let edited = original().replace("invitation_valid_for = \"7d\"", "invitation_valid_for = \"5d\"");
    std::fs::write(&file, &edited).unwrap();
    let (ok, out, err) = run(&["workflows", "publish", file.to_str().unwrap(), "--activate"]);
    assert!(ok, "{err}");
    assert!(out.contains("published") && out.contains("is active"), "{out}");

    let (ok, out, err) = run(&["workflows", "versions", "online_signing"]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].contains("by workflows/") && !lines[0].contains(" * "), "{out}");
    assert!(
        lines[1].contains("by platform_admin:cli") && lines[1].contains(" * "),
        "{out}"
    );
    assert!(lines[1].contains("(2 lines changed)"), "{out}");
    let (old, new) = (&lines[0][..12], &lines[1][..12]);

    let (ok, out, err) = run(&["workflows", "graph", &format!("online_signing@{new}")]);
    assert!(ok, "{err}");
    assert!(out.starts_with("stateDiagram-v2"), "{out}");

    let (ok, out, err) = run(&["workflows", "diff", "online_signing", old, new]);
    assert!(ok, "{err}");
    assert_eq!(
        out,
        "- invitation_valid_for = \"7d\"       # 应约有效期 default (R5)\n+ invitation_valid_for = \"5d\"       # 应约有效期 default (R5)\n"
    );

    // Migration from the command line: a policy that is none is refused before anything
    // runs; a case that does not exist is named as not moved. (Moving live cases is
    // tested through the API, which runs the same engine call.)
    let (ok, _, err) = run(&[
        "workflows",
        "migrate",
        "online_signing",
        new,
        "--case",
        "C1",
        "--timer",
        "expire=later",
    ]);
    assert!(!ok);
    assert!(
        err.contains("--timer expire=later: the policy is keep, recompute or cancel"),
        "{err}"
    );
    let (ok, out, err) = run(&[
        "workflows",
        "migrate",
        "online_signing",
        new,
        "--case",
        "C1",
        "--state",
        "invited=invited",
        "--timer",
        "expire=keep",
    ]);
    assert!(ok, "{err}");
    assert_eq!(out, "not moved C1: no case C1 of workflow online_signing\n");
    let (ok, _, err) = run(&[
        "workflows",
        "migrate",
        "online_signing",
        new,
        "--case",
        "C1",
        "--timer",
        "expiry=keep",
    ]);
    assert!(!ok);
    assert!(
        err.contains("timers.expiry: the new version has no timer `expiry`; its timers: "),
        "{err}"
    );
}
