//! The schools' work (issue 12) through HTTP, on SQLite and PostgreSQL: people who act
//! under their own names, the graduates' data and its bulk sync.

mod support;

use gradsign::definition::Role;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{Backend, SCHOOL, TestApp, pdf, spawn_app};

on_both_backends!(
    history_names_the_person_and_old_tokens_act_as_their_role,
    a_bulk_sync_stores_the_good_records_and_names_each_bad_one,
    ndjson_syncs_like_an_array,
    employer_codes_are_checked_at_sync,
    statistics_match_a_count_made_from_the_records,
    bulk_approval_does_each_case_on_its_own,
    lists_filter_search_sort_and_page_exactly,
    a_list_row_shows_the_unit_and_position_the_definition_maps,
    the_csv_export_reads_back_with_every_row_and_code,
    a_case_list_exports_with_the_lists_filters_and_order,
);

async fn seeded(backend: Backend) -> Option<TestApp> {
    let app = spawn_app(backend).await?;
    app.seed().await;
    Some(app)
}

async fn history_names_the_person_and_old_tokens_act_as_their_role(backend: Backend) {
    let Some(app) = seeded(backend).await else { return };
    // Two reviewers of one school: each approval names its own person.
    let zhao = app.token_as(Role::SchoolReviewer, None, Some(SCHOOL), Some(("U300", Some("赵静"))));
    let qian = app.token_as(Role::SchoolReviewer, None, Some(SCHOOL), Some(("U301", None)));
    let old = app.token_as(Role::SchoolReviewer, None, Some(SCHOOL), None);
    let mut approvals = Vec::new();
    let mut cases = Vec::new();
    for (student, token) in [("S1", &zhao), ("S2", &qian), ("S3", &old)] {
        let invited = app.invite("E1", student).await;
        assert_eq!(invited.status, StatusCode::CREATED, "{}", invited.body);
        let case = invited.id();
        cases.push(case.clone());
        for step in ["view", "accept", "confirm"] {
            let r = app.fire(&case, step, &app.student(student), json!({})).await;
            assert_eq!(r.status, StatusCode::OK, "{step}: {}", r.body);
        }
        let r = app.fire(&case, "approve", token, json!({})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        approvals.push(r.body["history"].as_array().unwrap().last().unwrap().clone());
    }
    let shown: Vec<(&str, &Value, &str)> = approvals
        .iter()
        .map(|h| (h["actor"].as_str().unwrap(), &h["person"], h["by"].as_str().unwrap()))
        .collect();
    assert_eq!(
        shown,
        vec![
            (
                "school_reviewer@10212",
                &json!({ "sub": "U300", "name": "赵静" }),
                "赵静（学校审核员）"
            ),
            (
                "school_reviewer@10212",
                &json!({ "sub": "U301", "name": null }),
                "U301（学校审核员）"
            ),
            ("school_reviewer@10212", &Value::Null, "学校审核员"),
        ]
    );
    // The student's own steps name the student's person too.
    let viewed = app.case(&cases[0], &app.admin()).await;
    let accept = viewed.body["history"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["transition"] == "accept")
        .unwrap()
        .clone();
    assert_eq!(accept["person"]["sub"], "student-S1");
    assert_eq!(accept["by"], "学生S1（学生）");
}

fn student(id: &str, name: &str) -> Value {
    json!({ "id": id, "school": SCHOOL, "name": name, "student_number": format!("2022{id}"), "college": "计算机学院",
        "major": "软件工程", "education_level": "本科生毕业", "study_years": "4", "training_mode": "非定向",
        "political_status": "共青团员", "graduation_date": "2026-06-30", "origin_region": "230103" })
}

async fn a_bulk_sync_stores_the_good_records_and_names_each_bad_one(backend: Backend) {
    let Some(app) = seeded(backend).await else { return };
    let mut records: Vec<Value> = (0..3000).map(|i| student(&format!("B{i:05}"), "批量学生")).collect();
    records[5]["education_level"] = json!("99");
    records[17]["origin_region"] = json!("990101");
    records[17]["study_years"] = json!("9");
    records[42].as_object_mut().unwrap().remove("name");
    records[100]["hobby"] = json!("围棋");
    records[2999]["school"] = json!("99999");
    let r = app.put("/api/v1/students", &app.admin(), &Value::Array(records)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        (
            r.body["received"].as_u64(),
            r.body["stored"].as_u64(),
            r.body["created"].as_u64()
        ),
        (Some(3000), Some(2995), Some(2995))
    );
    let rejected: Vec<(u64, Vec<(String, String)>)> = r.body["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            let fields = x["errors"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| {
                    (
                        e["field"].as_str().unwrap().to_string(),
                        e["code"].as_str().unwrap().to_string(),
                    )
                })
                .collect();
            (x["index"].as_u64().unwrap(), fields)
        })
        .collect();
    let pair = |f: &str, c: &str| (f.to_string(), c.to_string());
    assert_eq!(
        rejected,
        vec![
            (5, vec![pair("education_level", "field.not_in_list")]),
            (
                17,
                vec![
                    pair("origin_region", "region_code.province"),
                    pair("study_years", "study_years.range")
                ]
            ),
            (42, vec![pair("name", "format")]),
            (100, vec![pair("hobby", "format")]),
            (2999, vec![pair("school", "unknown")]),
        ]
    );
    assert_eq!(app.count("parties WHERE kind = 'student'").await, 4 + 2995);
    // Stored normalised: codes for the coded fields, whatever spelling was sent.
    let stored = app
        .app
        .engine
        .party(gradsign::store::PartyKind::Student, "B00000")
        .await
        .unwrap()
        .unwrap();
    let data = stored.data_json();
    assert_eq!(
        (
            &data["education_level"],
            &data["training_mode"],
            &data["political_status"],
            &data["origin_region"]
        ),
        (&json!("31"), &json!("1"), &json!("03"), &json!("230103"))
    );
    // Syncing again replaces: nothing new.
    let again = app
        .put(
            "/api/v1/students",
            &app.admin(),
            &json!([student("B00000", "改名学生")]),
        )
        .await;
    assert_eq!(
        (again.body["stored"].as_u64(), again.body["created"].as_u64()),
        (Some(1), Some(0))
    );
    // Only the platform syncs.
    let r = app.put("/api/v1/students", &app.reviewer(), &json!([])).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

async fn ndjson_syncs_like_an_array(backend: Backend) {
    let Some(app) = seeded(backend).await else { return };
    let lines = [
        student("N1", "甲"),
        json!({ "id": "bad id", "school": SCHOOL, "name": "乙" }),
        student("N3", "丙"),
    ]
    .iter()
    .map(Value::to_string)
    .collect::<Vec<_>>()
    .join("\n");
    let resp = app
        .client
        .request(Method::PUT, format!("{}/api/v1/students", app.base))
        .bearer_auth(app.admin())
        .header("Content-Type", "application/x-ndjson")
        .body(lines + "\n")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        (body["stored"].as_u64(), body["rejected"][0]["index"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(body["rejected"][0]["errors"][0]["field"], "id");
    // A line that is not JSON refuses the whole request, naming the line.
    let resp = app
        .client
        .request(Method::PUT, format!("{}/api/v1/students", app.base))
        .bearer_auth(app.admin())
        .header("Content-Type", "application/x-ndjson")
        .body("{}\n{not json\n")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body: Value = resp.json().await.unwrap();
    assert!(body["detail"].as_str().unwrap().starts_with("line 2 "), "{body}");
}

async fn employer_codes_are_checked_at_sync(backend: Backend) {
    let Some(app) = seeded(backend).await else { return };
    let body = json!({ "name": "龙江重工", "credit_code": "91110000600037341L", "nature": "国有企业", "industry": "C",
        "location": "230103", "receives_archive": true, "receives_hukou": true });
    let r = app.put("/api/v1/employers/E9", &app.admin(), &body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(
        (&r.body["record"]["nature"], &r.body["record"]["industry"]),
        (&json!("31"), &json!("22"))
    );
    let mut bad = body.clone();
    bad["nature"] = json!("99");
    bad["industry"] = json!("ZZ");
    bad["location"] = json!("99");
    let r = app.put("/api/v1/employers/E9", &app.admin(), &bad).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let mut fields: Vec<&str> = r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    fields.sort_unstable();
    assert_eq!(fields, ["industry", "location", "nature"]);
}

/// Registers `category` for `student` and has the school approve it.
async fn register_approved(app: &TestApp, student: &str, category: &str, fields: Value, proof: Option<&str>) {
    let token = app.student(student);
    let body = json!({ "workflow": "destination_registration", "input": { "destination": { "category": category, "fields": fields } } });
    let started = app.post("/api/v1/cases", &token, &body).await;
    assert_eq!(started.status, StatusCode::CREATED, "{category}: {}", started.body);
    let case = started.id();
    if let Some(slot) = proof {
        let up = app.upload(&case, &token, slot, "proof.pdf", pdf(category)).await;
        assert_eq!(up.status, StatusCode::OK, "{category}: {}", up.body);
    }
    let sent = app.fire(&case, "submit", &token, json!({})).await;
    assert_eq!(sent.body["state"], "submitted", "{category}: {}", sent.body);
    let approved = app.fire(&case, "approve", &app.reviewer(), json!({})).await;
    assert_eq!(approved.body["state"], "approved", "{category}: {}", approved.body);
}

async fn statistics_match_a_count_made_from_the_records(backend: Backend) {
    let Some(app) = seeded(backend).await else { return };
    // Ten graduates of 2026 in two colleges, and one of 2025 the year filter leaves out.
    let mut records = Vec::new();
    for i in 1..=10 {
        let mut r = student(&format!("T{i}"), "统计学生");
        r["college"] = json!(if i <= 6 { "计算机学院" } else { "机械学院" });
        r["origin_region"] = json!(if i % 2 == 0 { "230103" } else { "370102" });
        records.push(r);
    }
    let mut old = student("T0", "往届学生");
    old["graduation_date"] = json!("2025-06-30");
    records.push(old);
    let r = app.put("/api/v1/students", &app.admin(), &Value::Array(records)).await;
    assert_eq!(r.body["stored"], 11, "{}", r.body);
    // Destinations through the workflows: an agreement (10) and registrations.
    app.sign_online("E1", "T1").await;
    let proof = Some("proof");
    register_approved(
        &app,
        "T2",
        "80",
        json!({ "admitting_school": "哈尔滨工业大学", "degree_level": "硕士研究生" }),
        proof,
    )
    .await;
    let freelance = json!({ "description": "独立插画师，为出版社供稿" });
    register_approved(&app, "T3", "76", freelance.clone(), proof).await;
    register_approved(&app, "T4", "70", json!({ "sub_status": "求职中" }), None).await;
    register_approved(
        &app,
        "T6",
        "85",
        json!({ "country_region": "新加坡", "school": "新加坡国立大学" }),
        proof,
    )
    .await;
    register_approved(
        &app,
        "T7",
        "75",
        json!({ "enterprise_name": "雪城文创网店", "location": "230104", "shop_url": "https://shop.example.cn/x" }),
        proof,
    )
    .await;
    register_approved(&app, "T8", "76", freelance, proof).await;
    register_approved(&app, "T9", "71", json!({}), None).await;
    register_approved(
        &app,
        "T0",
        "80",
        json!({ "admitting_school": "哈尔滨工程大学", "degree_level": "硕士研究生" }),
        proof,
    )
    .await;

    // The count made here, from what the test created: code per graduate of 2026, and
    // each code's group (REFERENCE.md §1).
    let made: [(&str, Option<&str>, &str); 10] = [
        ("T1", Some("10"), "计算机学院"),
        ("T2", Some("80"), "计算机学院"),
        ("T3", Some("76"), "计算机学院"),
        ("T4", Some("70"), "计算机学院"),
        ("T5", None, "计算机学院"),
        ("T6", Some("85"), "计算机学院"),
        ("T7", Some("75"), "机械学院"),
        ("T8", Some("76"), "机械学院"),
        ("T9", Some("71"), "机械学院"),
        ("T10", None, "机械学院"),
    ];
    let group_of = |code: &str| match code {
        "10" | "11" | "27" | "46" | "50" | "51" => "agreement_or_contract",
        "12" | "76" => "flexible",
        "75" => "startup",
        "80" | "85" => "further_study",
        "70" => "unemployed",
        _ => "not_seeking",
    };
    let placed_2021 =
        |code: &str| ["agreement_or_contract", "flexible", "startup", "further_study"].contains(&group_of(code));
    let placed_2024 = |code: &str| placed_2021(code) && code != "76";
    let expect = |college: Option<&str>, formula: &dyn Fn(&str) -> bool| {
        let mine: Vec<_> = made.iter().filter(|m| college.is_none_or(|c| m.2 == c)).collect();
        let mut by_category = serde_json::Map::new();
        let mut by_group = serde_json::Map::new();
        for (_, code, _) in &mine {
            if let Some(code) = code {
                let n = by_category.get(*code).and_then(Value::as_i64).unwrap_or(0);
                by_category.insert(code.to_string(), json!(n + 1));
                let n = by_group.get(group_of(code)).and_then(Value::as_i64).unwrap_or(0);
                by_group.insert(group_of(code).to_string(), json!(n + 1));
            }
        }
        let with = mine.iter().filter(|m| m.1.is_some()).count() as i64;
        let placed = mine.iter().filter(|m| m.1.is_some_and(formula)).count() as i64;
        json!({ "graduates": mine.len(), "with_destination": with, "without_destination": mine.len() as i64 - with,
            "by_category": by_category, "by_group": by_group, "placed": placed, "rate": placed as f64 / mine.len() as f64 })
    };
    let strip = |mut v: Value| {
        v.as_object_mut().unwrap().remove("key");
        v
    };
    for (formula, counts) in [("2021", &placed_2021 as &dyn Fn(&str) -> bool), ("2024", &placed_2024)] {
        let r = app
            .get(
                &format!("/api/v1/statistics/destinations?graduation_year=2026&group_by=college&formula={formula}"),
                &app.reviewer(),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.body["school"], SCHOOL);
        assert_eq!(r.body["formula"]["name"], formula);
        assert_eq!(r.body["total"], expect(None, counts), "{formula}");
        let groups = r.body["groups"].as_array().unwrap();
        let keys: Vec<&str> = groups.iter().map(|g| g["key"].as_str().unwrap()).collect();
        assert_eq!(keys, ["机械学院", "计算机学院"]);
        assert_eq!(strip(groups[0].clone()), expect(Some("机械学院"), counts), "{formula}");
        assert_eq!(
            strip(groups[1].clone()),
            expect(Some("计算机学院"), counts),
            "{formula}"
        );
    }
    // 2021: 6 of 10 placed (10, 80, 76, 85, 75, 76; not 70, 71, nor the two without); 2024 leaves 76 out.
    let rate = |formula: &str| {
        let app = &app;
        let path = format!("/api/v1/statistics/destinations?graduation_year=2026&formula={formula}");
        async move {
            app.get(&path, &app.admin()).await.body["total"]["rate"]
                .as_f64()
                .unwrap()
        }
    };
    assert_eq!((rate("2021").await, rate("2024").await), (0.6, 0.4));
    // By province of origin: 23 (even numbers) and 37 (odd).
    let r = app
        .get(
            "/api/v1/statistics/destinations?graduation_year=2026&group_by=origin_province",
            &app.reviewer(),
        )
        .await;
    let by_province: Vec<(String, i64)> = r.body["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| (g["key"].as_str().unwrap().to_string(), g["graduates"].as_i64().unwrap()))
        .collect();
    assert_eq!(by_province, [("23".to_string(), 5), ("37".to_string(), 5)]);
    // All years: the 2025 graduate counts too. Before anything was approved: nobody placed.
    let all = app.get("/api/v1/statistics/destinations", &app.reviewer()).await;
    assert_eq!(
        (
            all.body["total"]["graduates"].as_i64(),
            all.body["total"]["by_category"]["80"].as_i64()
        ),
        (Some(4 + 11), Some(2))
    );
    let past = app
        .get("/api/v1/statistics/destinations?as_of=2000-08-31", &app.reviewer())
        .await;
    assert_eq!(
        (
            past.body["as_of"].as_str(),
            past.body["total"]["with_destination"].as_i64()
        ),
        (Some("2000-08-31"), Some(0))
    );
    // A reviewer sees only their school, whatever they ask; a student sees none.
    let other = app
        .get("/api/v1/statistics/destinations?school=99999", &app.reviewer())
        .await;
    assert_eq!(other.body["school"], SCHOOL);
    let r = app.get("/api/v1/statistics/destinations", &app.student("T1")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = app
        .get("/api/v1/statistics/destinations?formula=1999", &app.reviewer())
        .await;
    assert_eq!(
        (r.status, r.body["errors"][0]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("formula"))
    );
}

/// Syncs `ids` as graduates of the test school (college by the closure), returns nothing.
async fn sync(app: &TestApp, students: &[(&str, &str, &str)]) {
    let records: Vec<Value> = students
        .iter()
        .map(|(id, name, college)| {
            let mut r = student(id, name);
            r["college"] = json!(college);
            r
        })
        .collect();
    let r = app.put("/api/v1/students", &app.admin(), &Value::Array(records)).await;
    assert_eq!(r.body["stored"].as_u64(), Some(students.len() as u64), "{}", r.body);
}

/// A 待就业 registration (no proof needed) started by `student`, submitted unless `draft`.
async fn registration(app: &TestApp, student: &str, draft: bool) -> String {
    let token = app.student(student);
    let body = json!({ "workflow": "destination_registration", "input": { "destination": { "category": "70", "fields": { "sub_status": "求职中" } } } });
    let started = app.post("/api/v1/cases", &token, &body).await;
    assert_eq!(started.status, StatusCode::CREATED, "{}", started.body);
    let case = started.id();
    if !draft {
        let sent = app.fire(&case, "submit", &token, json!({})).await;
        assert_eq!(sent.body["state"], "submitted", "{}", sent.body);
    }
    case
}

async fn versions(app: &TestApp, cases: &[String]) -> Vec<i64> {
    let mut out = Vec::new();
    for case in cases {
        out.push(app.case(case, &app.admin()).await.body["version"].as_i64().unwrap());
    }
    out
}

async fn bulk_approval_does_each_case_on_its_own(backend: Backend) {
    let Some(app) = seeded(backend).await else { return };
    let ids: Vec<String> = (0..50).map(|i| format!("K{i:02}")).collect();
    let students: Vec<(&str, &str, &str)> = ids.iter().map(|id| (id.as_str(), "审核学生", "计算机学院")).collect();
    sync(&app, &students).await;
    let mut cases = Vec::new();
    for id in &ids {
        cases.push(registration(&app, id, false).await);
    }
    // Three move on meanwhile: two approved one by one, one withdrawn by its student.
    for case in &cases[10..12] {
        let r = app.fire(case, "approve", &app.reviewer(), json!({})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    let r = app
        .fire(&cases[30], "withdraw", &app.student(&ids[30]), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let moved = vec![cases[10].clone(), cases[11].clone(), cases[30].clone()];
    let before = versions(&app, &moved).await;
    let body = json!({ "transition": "approve", "cases": cases });
    let key = [("Idempotency-Key", "bulk-approve-1")];
    let reviewer = app.reviewer();
    let r = app
        .request(Method::POST, "/api/v1/reviews/bulk", Some(&reviewer), Some(&body), &key)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        (r.body["done"].as_u64(), r.body["refused"].as_u64()),
        (Some(47), Some(3))
    );
    let results = r.body["results"].as_array().unwrap();
    assert_eq!(results.len(), 50);
    let refused: Vec<(&str, &str)> = results
        .iter()
        .filter(|x| x["outcome"] == "refused")
        .map(|x| (x["case"].as_str().unwrap(), x["problem"]["type"].as_str().unwrap()))
        .collect();
    assert_eq!(
        refused,
        moved
            .iter()
            .map(|c| (c.as_str(), "urn:gradsign:not-allowed-in-state"))
            .collect::<Vec<_>>()
    );
    for x in results.iter().filter(|x| x["outcome"] == "refused") {
        assert!(
            !x["problem"]["detail"].as_str().unwrap().is_empty()
                && !x["problem"]["detail_zh"].as_str().unwrap().is_empty()
        );
    }
    assert!(
        results
            .iter()
            .filter(|x| x["outcome"] == "done")
            .all(|x| x["state"] == "approved")
    );
    // No partial case: the refused ones are as they were; 49 records are in force.
    assert_eq!(versions(&app, &moved).await, before);
    assert_eq!(app.count("destinations WHERE status = 'in_force'").await, 49);
    let history = app.count("history").await;
    // The same request again: the 47 answered as before (replayed), nothing fired twice.
    let again = app
        .request(Method::POST, "/api/v1/reviews/bulk", Some(&reviewer), Some(&body), &key)
        .await;
    assert_eq!(
        (again.body["done"].as_u64(), again.body["refused"].as_u64()),
        (Some(47), Some(3))
    );
    assert!(
        again.body["results"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["outcome"] == "done")
            .all(|x| x["replayed"] == true)
    );
    assert_eq!(
        (
            app.count("history").await,
            app.count("destinations WHERE status = 'in_force'").await
        ),
        (history, 49)
    );
    // Bad requests answer problem+json and change nothing.
    let twice = json!({ "transition": "approve", "cases": [cases[0], cases[0]] });
    let r = app.post("/api/v1/reviews/bulk", &reviewer, &twice).await;
    assert_eq!(
        (r.status, r.body["errors"][0]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("cases"))
    );
    // A student cannot approve: each case refused for its role.
    let r = app
        .post(
            "/api/v1/reviews/bulk",
            &app.student(&ids[0]),
            &json!({ "transition": "approve", "cases": [cases[1]] }),
        )
        .await;
    assert_eq!(r.body["refused"], 1, "{}", r.body);
}

async fn lists_filter_search_sort_and_page_exactly(backend: Backend) {
    let Some(app) = seeded(backend).await else { return };
    sync(
        &app,
        &[
            ("L1", "王小明", "计算机学院"),
            ("L2", "李华", "计算机学院"),
            ("L3", "王芳芳", "机械学院"),
            ("L4", "赵雷", "机械学院"),
            ("L5", "钱多", "计算机学院"),
        ],
    )
    .await;
    // Created in order L1…L5; L4 stays a draft, L5 is approved; they enter their
    // states an hour apart, except L1, which is sent last (it has waited least).
    let hour = chrono::Duration::hours(1);
    let l1 = registration(&app, "L1", true).await;
    app.clock.advance(hour);
    let l2 = registration(&app, "L2", false).await;
    app.clock.advance(hour);
    let l3 = registration(&app, "L3", false).await;
    app.clock.advance(hour);
    let l4 = registration(&app, "L4", true).await;
    app.clock.advance(hour);
    let l5 = registration(&app, "L5", false).await;
    let r = app.fire(&l5, "approve", &app.reviewer(), json!({})).await;
    assert_eq!(r.status, StatusCode::OK);
    app.clock.advance(chrono::Duration::days(3));
    let r = app.fire(&l1, "submit", &app.student("L1"), json!({})).await;
    assert_eq!(r.body["state"], "submitted");
    let reviewer = app.reviewer();
    let list = |query: &str| {
        let app = &app;
        let reviewer = &reviewer;
        let query = query.to_string();
        async move {
            let r = app.get(&format!("/api/v1/cases?{query}"), reviewer).await;
            assert_eq!(r.status, StatusCode::OK, "{query}: {}", r.body);
            r.body
        }
    };
    let ids = |body: &Value| -> Vec<String> {
        body["cases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_string())
            .collect()
    };
    // Several states at once, in creation order.
    assert_eq!(
        ids(&list("state=submitted,draft").await),
        [l1.as_str(), l2.as_str(), l3.as_str(), l4.as_str()]
    );
    assert_eq!(ids(&list("state=approved").await), [l5.as_str()]);
    // Text search: a name, a student number, nothing.
    assert_eq!(ids(&list("q=%E7%8E%8B").await), [l1.as_str(), l3.as_str()]); // 王
    assert_eq!(ids(&list("q=2022L4").await), [l4.as_str()]);
    assert_eq!(ids(&list("q=%25").await), Vec::<String>::new()); // a literal %
    // Three characters or more (what a trigram index answers on PostgreSQL), and a
    // student number in the other case.
    assert_eq!(ids(&list("q=%E7%8E%8B%E8%8A%B3%E8%8A%B3").await), [l3.as_str()]); // 王芳芳
    assert_eq!(ids(&list("q=2022l4").await), [l4.as_str()]);
    // College, and waiting longer than 2 days (everything but L1, sent just now).
    assert_eq!(
        ids(&list("college=%E6%9C%BA%E6%A2%B0%E5%AD%A6%E9%99%A2").await),
        [l3.as_str(), l4.as_str()]
    ); // 机械学院
    assert_eq!(
        ids(&list("state=submitted&waiting_days=2").await),
        [l2.as_str(), l3.as_str()]
    );
    // Longest waiting first, paged two at a time with the cursor.
    let mut seen = Vec::new();
    let mut query = "state=submitted,draft&sort=waiting&limit=2".to_string();
    loop {
        let page = list(&query).await;
        seen.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(cursor) => query = format!("state=submitted,draft&sort=waiting&limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, [l2.as_str(), l3.as_str(), l4.as_str(), l1.as_str()]);
    // A row carries what the screen needs.
    let row = &list("q=2022L2").await["cases"][0];
    assert_eq!(
        (
            &row["student_name"],
            &row["student_number"],
            &row["college"],
            &row["state_title"],
            &row["workflow_title"]
        ),
        (
            &json!("李华"),
            &json!("2022L2"),
            &json!("计算机学院"),
            &json!("待学校审核 / awaiting the school's review"),
            &json!("其他去向登记")
        )
    );
    assert!(row["waiting_since"].is_string());
    // Graduates without a destination: not L5 (approved), nor the seeded S1–S4 filter.
    let r = app
        .get("/api/v1/students?without_destination=true&limit=3", &reviewer)
        .await;
    let first: Vec<&str> = r.body["students"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(first, ["L1", "L2", "L3"]);
    let cursor = r.body["next_cursor"].as_str().unwrap();
    let r = app
        .get(
            &format!("/api/v1/students?without_destination=true&limit=10&cursor={cursor}"),
            &reviewer,
        )
        .await;
    let rest: Vec<&str> = r.body["students"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(rest, ["L4", "S1", "S2", "S3", "S4"]);
    assert!(r.body["next_cursor"].is_null());
    let r = app
        .get("/api/v1/students?without_destination=true", &app.student("L1"))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

async fn the_csv_export_reads_back_with_every_row_and_code(backend: Backend) {
    let Some(app) = seeded(backend).await else { return };
    sync(
        &app,
        &[
            ("X1", "出口甲", "计算机学院"),
            ("X2", "出口乙, \"丙\"", "机械学院"),
            ("X3", "出口丁", "机械学院"),
        ],
    )
    .await;
    let contract = json!({ "unit_name": "哈尔滨电气集团有限公司", "credit_code": "91110000600037341L", "unit_nature": "国有企业",
        "industry": "C", "location": "230103", "job_category": "13", "contact": "周经理", "contact_phone": "0451-82870000" });
    register_approved(&app, "X1", "11", contract, Some("proof")).await;
    register_approved(
        &app,
        "X3",
        "80",
        json!({ "admitting_school": "哈尔滨工业大学", "degree_level": "硕士研究生" }),
        Some("proof"),
    )
    .await;
    let resp = app
        .client
        .get(format!("{}/api/v1/exports/destinations.csv", app.base))
        .bearer_auth(app.reviewer())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "text/csv; charset=utf-8");
    let bytes = resp.bytes().await.unwrap();
    let text = std::str::from_utf8(&bytes)
        .unwrap()
        .strip_prefix('\u{feff}')
        .expect("a byte-order mark for Excel");
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers: Vec<String> = reader.headers().unwrap().iter().map(str::to_string).collect();
    assert_eq!(headers.len(), 23);
    let rows: Vec<std::collections::HashMap<String, String>> = reader
        .records()
        .map(|r| {
            headers
                .iter()
                .cloned()
                .zip(r.unwrap().iter().map(str::to_string))
                .collect()
        })
        .collect();
    // Every graduate of the school: the four seeded and the three synced, by id.
    let names: Vec<&str> = rows.iter().map(|r| r["姓名"].as_str()).collect();
    assert_eq!(
        names,
        ["李明", "王芳", "张伟", "刘洋", "出口甲", "出口乙, \"丙\"", "出口丁"]
    );
    let x1 = &rows[4];
    let picked = |r: &std::collections::HashMap<String, String>, columns: &[&str]| -> Vec<String> {
        columns.iter().map(|c| r[*c].clone()).collect()
    };
    assert_eq!(
        picked(
            x1,
            &[
                "学号",
                "院系",
                "学历代码",
                "培养方式代码",
                "政治面貌代码",
                "生源地代码",
                "毕业去向代码",
                "毕业去向",
                "单位名称",
                "统一社会信用代码",
                "单位性质代码",
                "单位行业代码",
                "单位所在地代码",
                "工作职位类别代码",
                "审核人"
            ]
        ),
        [
            "2022X1",
            "计算机学院",
            "31",
            "1",
            "03",
            "230103",
            "11",
            "签劳动合同形式就业",
            "哈尔滨电气集团有限公司",
            "91110000600037341L",
            "31",
            "22",
            "230103",
            "13",
            "学校审核员10212（学校审核员）"
        ]
    );
    assert_eq!(
        picked(&rows[6], &["毕业去向代码", "单位名称"]),
        ["80", "哈尔滨工业大学"]
    );
    assert_eq!(picked(&rows[5], &["毕业去向代码", "审核人", "审核时间"]), ["", "", ""]);
    // A student may not export.
    let r = app.get("/api/v1/exports/destinations.csv", &app.student("X1")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // The same rows as XLSX, opened by a reader: every row, the codes as text.
    let resp = app
        .client
        .get(format!("{}/api/v1/exports/destinations.xlsx", app.base))
        .bearer_auth(app.reviewer())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let bytes = resp.bytes().await.unwrap().to_vec();
    use calamine::Reader;
    let mut book = calamine::Xlsx::new(std::io::Cursor::new(bytes)).expect("an xlsx workbook");
    let sheet = book.worksheet_range("毕业去向").expect("the sheet");
    let cells: Vec<Vec<String>> = sheet
        .rows()
        .map(|r| r.iter().map(|c| c.to_string()).collect())
        .collect();
    assert_eq!(cells[0], headers);
    assert_eq!(cells.len(), 1 + rows.len());
    for (line, row) in cells[1..].iter().zip(&rows) {
        let expected: Vec<String> = headers.iter().map(|h| row[h].clone()).collect();
        assert_eq!(line, &expected);
    }
}

/// The unit and the position of a list row come from the paths the definition maps
/// (`[destination_record]`): the synced employer online, what the invitation's terms say.
async fn a_list_row_shows_the_unit_and_position_the_definition_maps(backend: Backend) {
    let Some(app) = seeded(backend).await else { return };
    let r = app.invite("E1", "S1").await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let list = app.get("/api/v1/cases?workflow=online_signing", &app.reviewer()).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    let row = &list.body["cases"][0];
    assert_eq!(row["position"], "软件工程师", "{row}");
    assert_eq!(row["employer_name"], "龙江软件有限公司", "{row}");
    // The employer's name finds the case too; another name finds nothing.
    let found = app
        .get("/api/v1/cases?q=%E9%BE%99%E6%B1%9F%E8%BD%AF%E4%BB%B6", &app.reviewer())
        .await; // 龙江软件
    assert_eq!(found.body["cases"][0]["id"], r.id().as_str(), "{}", found.body);
    assert_eq!(found.body["cases"].as_array().map(Vec::len), Some(1), "{}", found.body);
    let none = app
        .get("/api/v1/cases?q=%E5%8C%97%E7%96%86%E7%94%B5%E5%8A%9B", &app.reviewer())
        .await; // 北疆电力
    assert_eq!(none.body["cases"], json!([]), "{}", none.body);
}

/// The case list export holds what the list shows, with the same filters and order, as
/// CSV and as XLSX; paging a screen is refused; a student exports only their own cases.
async fn a_case_list_exports_with_the_lists_filters_and_order(backend: Backend) {
    let Some(app) = seeded(backend).await else { return };
    sync(
        &app,
        &[
            ("K1", "导出甲", "计算机学院"),
            ("K2", "导出乙", "机械学院"),
            ("K3", "导出丙", "机械学院"),
        ],
    )
    .await;
    let k1 = registration(&app, "K1", false).await;
    app.clock.advance(chrono::Duration::hours(1));
    let _draft = registration(&app, "K2", true).await;
    app.clock.advance(chrono::Duration::hours(1));
    let k3 = registration(&app, "K3", false).await;
    let query = "state=submitted&sort=waiting";
    let listed = app.get(&format!("/api/v1/cases?{query}"), &app.reviewer()).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    let expected: Vec<Vec<String>> = listed.body["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            ["id", "state", "student_number", "student_name", "college"]
                .iter()
                .map(|k| c[*k].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .collect();
    assert_eq!(
        expected.iter().map(|r| r[0].as_str()).collect::<Vec<_>>(),
        [k1.as_str(), k3.as_str()]
    );
    let columns = ["案件编号", "状态代码", "学号", "姓名", "院系"];

    let download = |path: String, token: String| {
        let app = &app;
        async move {
            let resp = app
                .client
                .get(format!("{}{path}", app.base))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::OK, "{path}");
            resp.bytes().await.unwrap().to_vec()
        }
    };
    let bytes = download(format!("/api/v1/exports/cases.csv?{query}"), app.reviewer()).await;
    let text = std::str::from_utf8(&bytes)
        .unwrap()
        .strip_prefix('\u{feff}')
        .expect("a byte-order mark");
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers: Vec<String> = reader.headers().unwrap().iter().map(str::to_string).collect();
    let at: Vec<usize> = columns
        .iter()
        .map(|c| headers.iter().position(|h| h == c).expect(c))
        .collect();
    let csv_rows: Vec<Vec<String>> = reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            at.iter().map(|i| r[*i].to_string()).collect()
        })
        .collect();
    assert_eq!(csv_rows, expected);

    let bytes = download(format!("/api/v1/exports/cases.xlsx?{query}"), app.reviewer()).await;
    use calamine::Reader;
    let mut book = calamine::Xlsx::new(std::io::Cursor::new(bytes)).expect("an xlsx workbook");
    let sheet = book.worksheet_range("案件").expect("the sheet");
    let cells: Vec<Vec<String>> = sheet
        .rows()
        .map(|r| r.iter().map(|c| c.to_string()).collect())
        .collect();
    assert_eq!(cells[0], headers);
    let xlsx_rows: Vec<Vec<String>> = cells[1..]
        .iter()
        .map(|r| at.iter().map(|i| r.get(*i).cloned().unwrap_or_default()).collect())
        .collect();
    assert_eq!(xlsx_rows, expected);

    // A student's export holds their own cases only.
    let bytes = download("/api/v1/exports/cases.csv".into(), app.student("K3")).await;
    let text = String::from_utf8(bytes).unwrap();
    assert!(text.contains(&k3) && !text.contains(&k1), "{text}");
    // An export is not paged.
    for bad in ["limit=10", "cursor=x"] {
        let r = app
            .get(&format!("/api/v1/exports/cases.csv?{bad}"), &app.reviewer())
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {}", r.body);
    }
}
