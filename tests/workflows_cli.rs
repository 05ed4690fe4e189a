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
fn an_unknown_role_is_named_with_its_line() {
    let broken = original().replace(
        "by = [\"school_reviewer\", \"school_admin\"]",
        "by = [\"school_reviewer\", \"dean\"]",
    );
    let (ok, err, file) = check(&broken);
    assert!(!ok);
    let line = line_of(&broken, "\"dean\"");
    assert!(
        err.contains(&format!(
            "{file}:{line}: transition `approve` names unknown role `dean`"
        )),
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
