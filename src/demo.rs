//! `gradsign demo`: seeds a school, three students (one for each path) and two employers,
//! all with e-mail addresses, and prints shell lines that set the API address and a token
//! for each person, with the first command of each path. Running it again changes
//! nothing: a record already stored as the demo would write it is left alone.
//!
//! The records are written through the engine's party store, as the platform's sync
//! would; the tokens are minted with the configured secret, as `dev-token` does.

use serde_json::{Value, json};

use crate::{
    app::App,
    definition::Role,
    engine::{Actor, Person},
    store::{PartyKind, PartyRow, millis},
};

/// The demo's school: 北方理工大学, school code 10212.
pub const SCHOOL: &str = "10212";

/// A party record the demo stores.
struct Seed {
    kind: PartyKind,
    id: &'static str,
    school: Option<&'static str>,
    record: Value,
}

/// An employer that takes the student's 档案 and 户口 (`takes_files`) or not (R7).
fn employer(id: &'static str, name: &str, credit_code: &str, takes_files: bool, contact: (&str, &str)) -> Seed {
    Seed {
        kind: PartyKind::Employer,
        id,
        school: None,
        record: json!({
            "name": name, "credit_code": credit_code,
            "receives_archive": takes_files, "receives_hukou": takes_files,
            "contact": contact.0, "phone": contact.1,
            "email": format!("hr@{}.example.com", id.to_lowercase()),
        }),
    }
}

fn seeds() -> Vec<Seed> {
    let student = |id: &'static str, name: &str, number: &str, gender: &str| Seed {
        kind: PartyKind::Student,
        id,
        school: Some(SCHOOL),
        record: json!({
            "school": SCHOOL, "name": name, "gender": gender, "student_number": number,
            "major": "计算机科学与技术", "degree": "本科", "phone": "13800138000",
            "email": format!("{}@students.example.edu.cn", id.to_lowercase()),
        }),
    };
    vec![
        Seed {
            kind: PartyKind::School,
            id: SCHOOL,
            school: None,
            record: json!({
                "name": "北方理工大学", "office": "就业指导中心", "phone": "0451-86412114",
                "reviewer_email": "review@nit.example.edu.cn", "admin_email": "dean@nit.example.edu.cn",
            }),
        },
        student("S100", "李明", "2022010100", "男"),
        student("S200", "王芳", "2022010200", "女"),
        student("S300", "张伟", "2022010300", "男"),
        employer(
            "E100",
            "龙江软件有限公司",
            "91110000600037341L",
            false,
            ("赵主任", "0451-88886666"),
        ),
        employer(
            "E200",
            "松花江数据科技有限公司",
            "91110000101623741K",
            true,
            ("钱经理", "0451-87776655"),
        ),
    ]
}

/// Stores the demo's records (those not already stored as they are) and returns the
/// shell lines to print.
pub async fn run(app: &App) -> anyhow::Result<String> {
    let mut written = Vec::new();
    for seed in seeds() {
        let name = seed.record["name"].as_str().unwrap_or_default().to_string();
        let stored = app.engine.party(seed.kind, seed.id).await?;
        let unchanged = stored.as_ref().is_some_and(|row| {
            row.name == name && row.school_id.as_deref() == seed.school && row.data_json() == seed.record
        });
        if unchanged {
            continue;
        }
        app.engine
            .put_party(&PartyRow {
                kind: seed.kind.as_str().into(),
                id: seed.id.into(),
                school_id: seed.school.map(str::to_string),
                name,
                data: seed.record.to_string(),
                updated_at: millis(app.engine.now()),
            })
            .await?;
        written.push(seed.id);
    }
    Ok(script(app, &written))
}

fn script(app: &App, written: &[&str]) -> String {
    // Each token names a person, so the history says who did what.
    let token = |role: Role, party: Option<&str>, school: Option<&str>| {
        let (sub, name) = match (role, party) {
            (Role::PlatformAdmin, _) => ("U900", "孙平"),
            (Role::SchoolReviewer, _) => ("U300", "赵静"),
            (Role::Employer, Some("E200")) => ("U220", "钱磊"),
            (Role::Employer, _) => ("U210", "周红"),
            (_, Some(student)) => (student, ""),
            _ => ("U000", ""),
        };
        let actor = Actor {
            role,
            party: party.map(str::to_string),
            school: school.map(str::to_string),
            college: None,
            person: Some(Person {
                sub: sub.to_string(),
                name: (!name.is_empty()).then(|| name.to_string()),
            }),
        };
        app.keys.mint(&actor, chrono::Duration::days(30))
    };
    let seeded = if written.is_empty() {
        "# gradsign demo: the demo records were already there; nothing changed.".to_string()
    } else {
        format!("# gradsign demo: stored {}.", written.join(", "))
    };
    let base = format!("http://{}", app.config.listen);
    let lines = [
        seeded,
        format!(
            "# School {SCHOOL} 北方理工大学; students S100 李明 (online), S200 王芳 (offline), S300 张伟 (registration);"
        ),
        "# employers E100 龙江软件有限公司 (does not take 档案/户口) and E200 松花江数据科技有限公司 (takes both).".into(),
        "# Load these into your shell with: eval \"$(gradsign demo)\"".into(),
        format!("export BASE={base}"),
        "export API=$BASE/api/v1".into(),
        format!("export ADMIN={}", token(Role::PlatformAdmin, None, None)),
        format!("export REVIEWER={}", token(Role::SchoolReviewer, None, Some(SCHOOL))),
        format!("export EMPLOYER={}", token(Role::Employer, Some("E100"), None)),
        format!("export EMPLOYER2={}", token(Role::Employer, Some("E200"), None)),
        format!("export STUDENT={}", token(Role::Student, Some("S100"), Some(SCHOOL))),
        format!(
            "export OFFLINE_STUDENT={}",
            token(Role::Student, Some("S200"), Some(SCHOOL))
        ),
        format!("export REG_STUDENT={}", token(Role::Student, Some("S300"), Some(SCHOOL))),
        "# With the server running (cargo run --release), the first step of each path:".into(),
        "#   online (the employer invites S100):".into(),
        "#     curl -s -X POST $API/cases -H \"Authorization: Bearer $EMPLOYER\" -H 'Content-Type: application/json' \\".into(),
        "#       -d '{\"workflow\":\"online_signing\",\"student\":\"S100\",\"input\":{\"terms\":{\"position\":\"软件工程师\",\"work_place\":\"哈尔滨\"}}}'".into(),
        "#   offline (S200 types in a paper agreement):".into(),
        "#     curl -s -X POST $API/cases -H \"Authorization: Bearer $OFFLINE_STUDENT\" -H 'Content-Type: application/json' \\".into(),
        "#       -d '{\"workflow\":\"offline_signing\",\"input\":{\"employer\":{\"name\":\"冰城机械制造有限公司\"}}}'".into(),
        "#   registration (S300 registers postgraduate study, category 80):".into(),
        "#     curl -s -X POST $API/cases -H \"Authorization: Bearer $REG_STUDENT\" -H 'Content-Type: application/json' \\".into(),
        "#       -d '{\"workflow\":\"destination_registration\",\"input\":{\"destination\":{\"category\":\"80\",\"fields\":{\"admitting_school\":\"哈尔滨工业大学\",\"degree_level\":\"硕士研究生\"}}}}'".into(),
        "#   what each person may do now: curl -s $API/cases/CASE_ID -H \"Authorization: Bearer $STUDENT\"".into(),
    ];
    lines.join("\n") + "\n"
}
