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

/// A graduate (乙方).
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
    pub major: Option<String>,
    pub degree: Option<String>,
    /// 生源地 — place of origin.
    pub origin: Option<String>,
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
    let mut record = to_map(&body.value);
    let mut errors = check_fields(&mut record, domain::parties::STUDENT_FIELDS);
    if let (Some(number), Some(gender)) = (&body.value.id_number, &body.value.gender)
        && let Ok(parsed) = domain::IdNumber::parse(number)
        && !parsed.matches_gender(gender)
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
    let school = record
        .get("school")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if school.is_empty() {
        errors.push(FieldError::new("required", "请填写学校", "school is required").with_field("school"));
    } else if state.engine.party(PartyKind::School, &school).await?.is_none() {
        errors.push(
            FieldError::new(
                "unknown",
                "学校不存在，请先同步学校",
                "unknown school; sync the school first",
            )
            .with_field("school"),
        );
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    put(&state, PartyKind::Student, &id, Some(school), record).await
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
    let errors = check_fields(&mut record, domain::parties::EMPLOYER_FIELDS);
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
        Role::SchoolReviewer | Role::SchoolAdmin => actor.school == student.school_id,
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
