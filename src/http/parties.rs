//! Reference data the platform syncs (schools, students, employers; platform admins
//! only), and a student's destination record (R2).

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::{
    AppState,
    error::{ApiError, Problem},
    extract::{Body, Caller},
};
use crate::{
    definition::Role,
    domain::{self, FieldError},
    engine::{Actor, effects::Destination},
    store::{PartyKind, PartyRow, millis},
};

/// A school (丙方).
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SchoolRecord {
    #[schema(min_length = 1)]
    pub name: String,
    /// 就业指导中心 — the employment office.
    pub office: Option<String>,
    pub contact: Option<String>,
    pub phone: Option<String>,
    pub address: Option<String>,
    /// Where review notices and the daily digest go.
    pub reviewer_email: Option<String>,
    /// Where escalations of overdue reviews go.
    pub admin_email: Option<String>,
}

/// A graduate (乙方): what the agreement and the statistics need (REFERENCE.md §2).
/// Coded fields take the code or the Chinese name from `reference/code_lists.toml` and
/// are stored as the code.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StudentRecord {
    /// The school's id (synced before its students).
    #[schema(min_length = 1)]
    pub school: String,
    #[schema(min_length = 1)]
    pub name: String,
    /// 男 or 女.
    pub gender: Option<String>,
    pub id_number: Option<String>,
    pub student_number: Option<String>,
    /// 院系 — the college or department.
    pub college: Option<String>,
    pub major: Option<String>,
    /// The degree as printed (free text, e.g. 工学学士).
    pub degree: Option<String>,
    /// 学历 — code list `education_level` (31 本科生毕业, 11 硕士生毕业, …).
    pub education_level: Option<String>,
    /// 学制 — years of study: 1 to 8, halves allowed (2.5).
    pub study_years: Option<String>,
    /// 培养方式 — code list `training_mode` (1 非定向, 2 定向, 3 委培).
    pub training_mode: Option<String>,
    /// 政治面貌 — code list `political_status` (GB/T 4762).
    pub political_status: Option<String>,
    /// 毕业时间 — YYYY-MM-DD.
    pub graduation_date: Option<String>,
    /// 生源地 — as written (free text).
    pub origin: Option<String>,
    /// 生源地 — GB/T 2260 region code (six digits); statistics group by its province.
    pub origin_region: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
}

/// An employer (甲方).
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmployerRecord {
    #[schema(min_length = 1)]
    pub name: String,
    /// 统一社会信用代码 (GB 32100-2015): 18 characters, the last a check character.
    #[schema(pattern = "^[0-9A-HJ-NPQRTUWXY]{2}[0-9]{6}[0-9A-HJ-NPQRTUWXY]{10}$")]
    pub credit_code: String,
    pub nature: Option<String>,
    pub industry: Option<String>,
    pub location: Option<String>,
    pub address: Option<String>,
    pub postcode: Option<String>,
    pub contact: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    /// Whether it receives the student's personnel file (档案).
    pub receives_archive: bool,
    /// Whether it receives the student's household registration (户口).
    pub receives_hukou: bool,
}

/// What a sync answers: the record as stored (normalised).
#[derive(Debug, Serialize, ToSchema)]
pub struct PartyAnswer {
    /// school, student or employer
    pub kind: String,
    pub id: String,
    #[schema(value_type = Object)]
    pub record: Value,
}

fn require_platform_admin(actor: &Actor) -> Result<(), ApiError> {
    if actor.role == Role::PlatformAdmin {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "only the platform syncs reference data",
            "仅平台管理员可同步基础数据",
        ))
    }
}

/// Checks every field of `record` with the domain validator of its kind (the one the
/// workflows' fields get), writing back the normalised form. Every string of a record
/// is listed, so no text reaches the store unchecked; `name` is required.
fn check_fields(record: &mut Map<String, Value>, kinds: &[(&str, &str)]) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for (field, kind) in kinds {
        let Some(value) = record.get(*field).filter(|v| !v.is_null()) else {
            continue;
        };
        match domain::validate(kind, value) {
            Ok(normalised) => {
                record.insert(field.to_string(), normalised);
            }
            Err(e) if e.code == "text.blank" && *field == "name" => {
                errors.push(FieldError::new("required", "请填写名称", "name is required").with_field("name"));
            }
            Err(e) if e.code == "text.blank" => {
                record.remove(*field);
            }
            Err(e) => errors.push(e.with_field(*field)),
        }
    }
    errors
}

async fn put(
    state: &AppState,
    kind: PartyKind,
    id: &str,
    school: Option<String>,
    record: Map<String, Value>,
) -> Result<(StatusCode, Json<PartyAnswer>), ApiError> {
    let name = record
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .trim()
        .to_string();
    let row = PartyRow {
        kind: kind.as_str().into(),
        id: id.to_string(),
        school_id: school,
        name,
        data: Value::Object(record.clone()).to_string(),
        updated_at: millis(state.engine.now()),
    };
    let created = state.engine.put_party(&row).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    let answer = PartyAnswer {
        kind: kind.as_str().into(),
        id: id.to_string(),
        record: Value::Object(record),
    };
    Ok((status, Json(answer)))
}

fn check_id(id: &str) -> Result<(), ApiError> {
    let ok = !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(vec![
            FieldError::new(
                "format",
                "编号只能包含字母、数字和 -_.（最长 64 位）",
                "ids are 1–64 letters, digits or -_.",
            )
            .with_field("id"),
        ]))
    }
}

fn to_map<T: Serialize>(record: &T) -> Map<String, Value> {
    match serde_json::to_value(record) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

/// Create or replace a school.
#[utoipa::path(put, path = "/api/v1/schools/{id}", operation_id = "put_school", request_body = SchoolRecord, tag = "parties",
    params(("id" = String, Path, pattern = r"^[A-Za-z0-9._-]{1,64}$", description = "the school's id")),
    responses((status = 201, body = PartyAnswer, description = "created"), (status = 200, body = PartyAnswer, description = "replaced"),
        (status = 403, body = Problem, description = "not a platform admin")),
    security(("bearer" = [])))]
pub async fn put_school(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
    body: Body<SchoolRecord>,
) -> Result<(StatusCode, Json<PartyAnswer>), ApiError> {
    require_platform_admin(&actor)?;
    check_id(&id)?;
    let mut record = to_map(&body.value);
    let errors = check_fields(&mut record, domain::parties::SCHOOL_FIELDS);
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    put(&state, PartyKind::School, &id, None, record).await
}

/// Create or replace a student; the school must exist.
#[utoipa::path(put, path = "/api/v1/students/{id}", operation_id = "put_student", request_body = StudentRecord, tag = "parties",
    params(("id" = String, Path, pattern = r"^[A-Za-z0-9._-]{1,64}$", description = "the student's id")),
    responses((status = 201, body = PartyAnswer, description = "created"), (status = 200, body = PartyAnswer, description = "replaced"),
        (status = 403, body = Problem, description = "not a platform admin")),
    security(("bearer" = [])))]
pub async fn put_student(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
    body: Body<StudentRecord>,
) -> Result<(StatusCode, Json<PartyAnswer>), ApiError> {
    require_platform_admin(&actor)?;
    check_id(&id)?;
    let mut schools = KnownSchools::default();
    let (school, record) = check_student(&state, &mut schools, to_map(&body.value))
        .await?
        .map_err(ApiError::invalid)?;
    put(&state, PartyKind::Student, &id, Some(school), record).await
}

/// Schools looked up once per request (a bulk sync names a few schools many times).
#[derive(Default)]
struct KnownSchools(std::collections::HashMap<String, bool>);

impl KnownSchools {
    async fn exists(&mut self, state: &AppState, id: &str) -> Result<bool, ApiError> {
        if let Some(known) = self.0.get(id) {
            return Ok(*known);
        }
        let known = state.engine.party(PartyKind::School, id).await?.is_some();
        self.0.insert(id.to_string(), known);
        Ok(known)
    }
}

/// A student record checked and normalised: its school and the record to store, or every
/// field that is wrong.
async fn check_student(
    state: &AppState,
    schools: &mut KnownSchools,
    mut record: Map<String, Value>,
) -> Result<Result<(String, Map<String, Value>), Vec<FieldError>>, ApiError> {
    let mut errors = check_fields(&mut record, domain::parties::STUDENT_FIELDS);
    errors.extend(check_codes(
        &mut record,
        &[
            ("education_level", "education_level"),
            ("training_mode", "training_mode"),
            ("political_status", "political_status"),
        ],
    ));
    if let Some(years) = record.get("study_years").and_then(Value::as_str)
        && !years
            .parse::<f64>()
            .is_ok_and(|y| (1.0..=8.0).contains(&y) && (y * 2.0).fract() == 0.0)
    {
        errors.push(
            FieldError::new(
                "study_years.range",
                "学制应为1到8年（可为半年，如2.5）",
                "must be 1 to 8 years, in halves (2.5)",
            )
            .with_field("study_years"),
        );
    }
    let text = |key: &str| record.get(key).and_then(Value::as_str).map(str::to_string);
    if let (Some(number), Some(gender)) = (text("id_number"), text("gender"))
        && let Ok(parsed) = domain::IdNumber::parse(&number)
        && !parsed.matches_gender(&gender)
    {
        errors.push(
            FieldError::new(
                "id_number.sex_mismatch",
                "身份证号码中的性别与所填性别不一致",
                "the sex digit of the id number does not match the gender",
            )
            .with_field("id_number"),
        );
    }
    let school = text("school").unwrap_or_default();
    if school.is_empty() {
        errors.push(FieldError::new("required", "请填写学校", "school is required").with_field("school"));
    } else if !schools.exists(state, &school).await? {
        errors.push(
            FieldError::new(
                "unknown",
                "学校不存在，请先同步学校",
                "unknown school; sync the school first",
            )
            .with_field("school"),
        );
    }
    Ok(if errors.is_empty() {
        Ok((school, record))
    } else {
        Err(errors)
    })
}

/// Checks coded fields against their code lists (`reference/code_lists.toml`), storing
/// the entry's code whichever spelling (code, Chinese name, alias) was sent.
fn check_codes(record: &mut Map<String, Value>, lists: &[(&str, &str)]) -> Vec<FieldError> {
    let reference = domain::Reference::builtin();
    let mut errors = Vec::new();
    for (field, name) in lists {
        let Some(input) = record.get(*field).and_then(Value::as_str).map(str::to_string) else {
            continue;
        };
        let list = reference
            .code_list(name)
            .expect("the code lists the sync checks are built in");
        match list.lookup(&input) {
            Some(entry) => {
                record.insert(field.to_string(), Value::String(entry.code.clone()));
            }
            None => errors.push(
                FieldError::new(
                    "field.not_in_list",
                    format!("“{input}”不是有效的{}，请从列表中选择", list.name_zh),
                    format!("'{input}' is not a valid {}; choose one from the list", list.name_en),
                )
                .with_field(*field),
            ),
        }
    }
    errors
}

/// What a bulk sync did: how many records it stored, and each one it refused.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkSyncAnswer {
    /// Records received.
    pub received: usize,
    /// Records stored (new or replaced).
    pub stored: usize,
    /// Of those, the new ones.
    pub created: usize,
    pub rejected: Vec<RejectedRecord>,
}

/// A record a bulk sync refused, by its position in the request (0-based).
#[derive(Debug, Serialize, ToSchema)]
pub struct RejectedRecord {
    pub index: usize,
    /// The record's id, when it had one.
    pub id: Option<String>,
    /// What is wrong, field by field (`field`, `code`, `zh`, `en`).
    #[schema(value_type = Vec<Object>)]
    pub errors: Vec<FieldError>,
}

/// The most records one bulk sync takes, and the largest body.
pub const MAX_BULK_RECORDS: usize = 20_000;
pub const MAX_BULK_BYTES: usize = 32 * 1024 * 1024;

/// Create or replace many students at once: a JSON array of records (each with its
/// `id`), or NDJSON (`application/x-ndjson`, one record a line). Valid records are stored
/// (in one transaction); each invalid one is named by its index, with every wrong field.
#[utoipa::path(put, path = "/api/v1/students", operation_id = "put_students", tag = "parties",
    request_body(content(
        (Vec<Object> = "application/json"),
        (Object = "application/x-ndjson")
    ), description = "the records: a JSON array, or NDJSON with one record a line. Each record is a \
        `StudentRecord` with the student's `id` beside its fields; a record that is not one is \
        listed in `rejected` with its index, not refused with the request"),
    responses((status = 200, body = BulkSyncAnswer, description = "the valid records are stored; the others are listed"),
        (status = 403, body = Problem, description = "not a platform admin"),
        (status = 422, body = Problem, description = "a NUL character somewhere in the records")),
    security(("bearer" = [])))]
pub async fn put_students(
    State(state): State<AppState>,
    Caller(actor): Caller,
    headers: axum::http::HeaderMap,
    bytes: axum::body::Bytes,
) -> Result<Json<BulkSyncAnswer>, ApiError> {
    require_platform_admin(&actor)?;
    let items = bulk_items(&headers, &bytes)?;
    let mut schools = KnownSchools::default();
    let mut rows = Vec::new();
    let mut rejected = Vec::new();
    let now = millis(state.engine.now());
    for (index, item) in items.into_iter().enumerate() {
        let mut item = match item {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        let id = match item.remove("id") {
            Some(Value::String(id)) => Some(id),
            _ => None,
        };
        let checked = match (&id, serde_json::from_value::<StudentRecord>(Value::Object(item))) {
            (Some(id), _) if check_id(id).is_err() => Err(vec![
                FieldError::new(
                    "format",
                    "编号只能包含字母、数字和 -_.（最长 64 位）",
                    "ids are 1–64 letters, digits or -_.",
                )
                .with_field("id"),
            ]),
            (None, _) => Err(vec![
                FieldError::new("required", "请填写编号", "id is required").with_field("id"),
            ]),
            (Some(_), Err(e)) => Err(vec![record_error(&e)]),
            (Some(id), Ok(record)) => check_student(&state, &mut schools, to_map(&record))
                .await?
                .map(|checked| (id.clone(), checked)),
        };
        match checked {
            Ok((id, (school, record))) => rows.push(PartyRow {
                kind: PartyKind::Student.as_str().into(),
                id,
                school_id: Some(school),
                name: record
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                data: Value::Object(record).to_string(),
                updated_at: now,
            }),
            Err(errors) => rejected.push(RejectedRecord { index, id, errors }),
        }
    }
    let received = rows.len() + rejected.len();
    let created = state.engine.put_parties(&rows).await?;
    Ok(Json(BulkSyncAnswer {
        received,
        stored: rows.len(),
        created,
        rejected,
    }))
}

/// A record that is not a student record: an unknown field, a missing one, a wrong type.
fn record_error(e: &serde_json::Error) -> FieldError {
    // A bulk sync reports every record's shape problem under one code.
    FieldError {
        code: "format",
        ..super::extract::shape_error(e, "record", &format!("记录格式有误：{e}"))
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct GraduatesQuery {
    /// The school (school staff always get their own; a platform admin may name any,
    /// or none for every school).
    pub school: Option<String>,
    /// Only students of this college (院系).
    pub college: Option<String>,
    /// Only graduates with no destination record in force.
    pub without_destination: Option<bool>,
    /// At most this many (1–500, default 100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A graduate as a list shows them.
#[derive(Debug, Serialize, ToSchema)]
pub struct GraduateSummary {
    pub id: String,
    pub school: Option<String>,
    pub name: String,
    pub student_number: Option<String>,
    pub college: Option<String>,
    pub major: Option<String>,
    /// 学历 code.
    pub education_level: Option<String>,
    pub graduation_date: Option<String>,
    /// The category of the destination record in force; null without one.
    pub destination_category: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GraduateList {
    pub students: Vec<GraduateSummary>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// A school's graduates — with `without_destination=true`, those still without a
/// destination — for its staff and platform admins, by id.
#[utoipa::path(get, path = "/api/v1/students", operation_id = "list_students", tag = "parties", params(GraduatesQuery),
    responses((status = 200, body = GraduateList, description = "a page of graduates"),
        (status = 403, body = Problem, description = "neither school staff nor a platform admin"),
        (status = 422, body = Problem, description = "`limit` out of range")),
    security(("bearer" = [])))]
pub async fn list_students(
    State(state): State<AppState>,
    Caller(actor): Caller,
    query: Result<axum::extract::Query<GraduatesQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<GraduateList>, ApiError> {
    let axum::extract::Query(q) = query.map_err(|e| ApiError::malformed(e.body_text()))?;
    if !matches!(
        actor.role,
        Role::SchoolReviewer | Role::SchoolAdmin | Role::PlatformAdmin
    ) {
        return Err(ApiError::forbidden(
            "only school staff and platform admins list graduates",
            "仅学校工作人员和平台管理员可查看毕业生名单",
        ));
    }
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::invalid(vec![
            FieldError::new("range", "limit 须在 1 到 500 之间", "limit must be 1 to 500").with_field("limit"),
        ]));
    }
    let filter = crate::store::GraduateFilter {
        school: q.school,
        college: q.college,
        without_destination: q.without_destination.unwrap_or(false),
        after: q.cursor,
        limit: limit + 1,
    };
    let mut rows = state.engine.graduates(&actor, filter).await?;
    let next_cursor = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|r| r.id.clone())
    } else {
        None
    };
    let students = rows
        .into_iter()
        .map(|r| GraduateSummary {
            id: r.id,
            school: r.school_id,
            name: r.name,
            student_number: r.student_number,
            college: r.college,
            major: r.major,
            education_level: r.education_level,
            graduation_date: r.graduation_date,
            destination_category: r.category_code,
        })
        .collect();
    Ok(Json(GraduateList { students, next_cursor }))
}

/// The records of a bulk sync, from a JSON array or NDJSON.
fn bulk_items(headers: &axum::http::HeaderMap, bytes: &[u8]) -> Result<Vec<Value>, ApiError> {
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let malformed = |line: Option<usize>, e: serde_json::Error| {
        ApiError::malformed(match line {
            Some(n) => format!("line {n} is not JSON: {e}"),
            None => format!("the body is not a JSON array: {e}"),
        })
    };
    let items: Vec<Value> = if content_type.starts_with("application/x-ndjson") {
        let text = std::str::from_utf8(bytes).map_err(|_| ApiError::malformed("the body is not UTF-8"))?;
        text.lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
            .map(|(n, line)| serde_json::from_str(line).map_err(|e| malformed(Some(n + 1), e)))
            .collect::<Result<_, _>>()?
    } else if content_type.starts_with("application/json") {
        serde_json::from_slice(bytes).map_err(|e| malformed(None, e))?
    } else {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "send the records as application/json (an array) or application/x-ndjson",
            "请求内容须为 application/json（数组）或 application/x-ndjson",
        ));
    };
    if items.len() > MAX_BULK_RECORDS {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            format!("at most {MAX_BULK_RECORDS} records a request, got {}", items.len()),
            format!("每次最多同步{MAX_BULK_RECORDS}条记录，本次{}条", items.len()),
        ));
    }
    if let Some(at) = items.iter().position(|v| !v.is_object()) {
        return Err(ApiError::malformed(format!("record {at} is not a JSON object")));
    }
    // As every JSON body: a NUL anywhere is refused, naming where.
    if let Some(at) = items
        .iter()
        .enumerate()
        .find_map(|(i, v)| super::extract::nul_in(v, &i.to_string()))
    {
        return Err(ApiError::invalid(vec![
            FieldError::new(
                "text.control_char",
                "内容含有空字符（NUL, \\u0000）",
                "contains a NUL character (\\u0000)",
            )
            .with_field(at),
        ]));
    }
    Ok(items)
}

/// Create or replace an employer; its credit code must pass the GB 32100 check.
#[utoipa::path(put, path = "/api/v1/employers/{id}", operation_id = "put_employer", request_body = EmployerRecord, tag = "parties",
    params(("id" = String, Path, pattern = r"^[A-Za-z0-9._-]{1,64}$", description = "the employer's id")),
    responses((status = 201, body = PartyAnswer, description = "created"), (status = 200, body = PartyAnswer, description = "replaced"),
        (status = 403, body = Problem, description = "not a platform admin")),
    security(("bearer" = [])))]
pub async fn put_employer(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
    body: Body<EmployerRecord>,
) -> Result<(StatusCode, Json<PartyAnswer>), ApiError> {
    require_platform_admin(&actor)?;
    check_id(&id)?;
    let mut record = to_map(&body.value);
    let mut errors = check_fields(&mut record, domain::parties::EMPLOYER_FIELDS);
    // Coded fields are checked at sync, so the agreement can print their names.
    errors.extend(check_codes(
        &mut record,
        &[("nature", "unit_nature"), ("industry", "industry")],
    ));
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    put(&state, PartyKind::Employer, &id, None, record).await
}

/// 毕业去向 — a destination record (R2): the one in force, or one kept as history.
#[derive(Debug, Serialize, ToSchema)]
pub struct DestinationView {
    pub student: String,
    pub category_code: String,
    pub category_name: String,
    pub unit_name: Option<String>,
    pub location: Option<String>,
    /// The case whose approval wrote it.
    pub case_id: String,
    pub approved_at: String,
    /// `in_force`, `withdrawn` (a termination or withdrawal ended it) or `replaced` (by an
    /// approved correction or a later record).
    pub status: String,
    /// The case whose transition ended it, that transition, and when.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_by_case: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<String>,
}

/// A student's destination history.
#[derive(Debug, Serialize, ToSchema)]
pub struct DestinationHistory {
    pub student: String,
    /// The record in force first, then the withdrawn and replaced ones, newest first.
    pub records: Vec<DestinationView>,
}

/// The student, their school and platform admins may read a student's destination. To
/// anyone else it answers exactly as for a student who does not exist (`404`), so
/// student ids cannot be probed.
async fn may_read_destination(state: &AppState, actor: &Actor, id: &str) -> Result<(), ApiError> {
    let unseen = || ApiError::not_found("destination", id);
    let student = state.engine.party(PartyKind::Student, id).await?.ok_or_else(unseen)?;
    let allowed = match actor.role {
        Role::Student => actor.party.as_deref() == Some(id),
        // Staff of one college (二级学院) read their college's students only.
        Role::SchoolReviewer | Role::SchoolAdmin => {
            actor.school == student.school_id
                && actor
                    .college
                    .as_ref()
                    .is_none_or(|c| student.data_json().get("college").and_then(Value::as_str) == Some(c.as_str()))
        }
        Role::PlatformAdmin => true,
        _ => false,
    };
    if allowed { Ok(()) } else { Err(unseen()) }
}

fn destination_view(student: &str, d: Destination) -> DestinationView {
    let category_name = domain::Reference::builtin()
        .category(&d.category_code)
        .map(|c| c.name_zh.clone())
        .unwrap_or_default();
    DestinationView {
        student: student.to_string(),
        category_code: d.category_code,
        category_name,
        unit_name: d.unit_name,
        location: d.location,
        case_id: d.case_id,
        approved_at: d.approved_at.to_rfc3339(),
        status: d.status,
        ended_by_case: d.ended_by_case,
        ended_by: d.ended_by,
        ended_at: d.ended_at.map(|t| t.to_rfc3339()),
    }
}

/// A student's destination record: the student, their school and platform admins. To
/// anyone else it answers exactly as for a student who does not exist (`404`), so
/// student ids cannot be probed.
#[utoipa::path(get, path = "/api/v1/students/{id}/destination", operation_id = "get_destination", tag = "parties",
    params(("id" = String, Path, description = "the student's id")),
    responses((status = 200, body = DestinationView), (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn destination(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
) -> Result<Json<DestinationView>, ApiError> {
    may_read_destination(&state, &actor, &id).await?;
    let d = state
        .engine
        .destination(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("destination", &id))?;
    Ok(Json(destination_view(&id, d)))
}

/// A student's destination history (毕业去向记录): every record, current first, each with
/// the case that made it and the case that ended it. Records are never deleted.
#[utoipa::path(get, path = "/api/v1/students/{id}/destinations", operation_id = "list_destinations", tag = "parties",
    params(("id" = String, Path, description = "the student's id")),
    responses((status = 200, body = DestinationHistory), (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn destinations(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
) -> Result<Json<DestinationHistory>, ApiError> {
    may_read_destination(&state, &actor, &id).await?;
    let records = state
        .engine
        .destinations(&id)
        .await?
        .into_iter()
        .map(|d| destination_view(&id, d))
        .collect();
    Ok(Json(DestinationHistory { student: id, records }))
}
