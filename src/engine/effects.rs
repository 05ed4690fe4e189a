//! The effects a definition names (`record_destination`, `withdraw_destination`,
//! `assign_agreement_number`, `render = "slot"`), carried out inside the transaction of
//! the transition that caused them, and the destination records they keep (R2): one in
//! force per student, every earlier one kept as `withdrawn` or `replaced` with the case
//! that ended it.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{
    CaseRef, Parties,
    service::{Engine, Result},
};
use crate::{
    definition::{Definition, Effect},
    jobs::Job,
    store::{CaseRow, DestinationRow, Ending, Tx, from_millis, millis},
};

/// A destination record (毕业去向信息, R2), in force or kept as history.
#[derive(Debug, Clone, Serialize)]
pub struct Destination {
    pub category_code: String,
    pub unit_name: Option<String>,
    pub location: Option<String>,
    /// The case whose approval made it.
    pub case_id: String,
    pub approved_at: DateTime<Utc>,
    /// `in_force`, `withdrawn` (a termination or withdrawal ended it) or `replaced` (an
    /// approved correction, or a later record, took its place).
    pub status: String,
    /// The case whose transition ended it, and which transition, and when.
    pub ended_by_case: Option<String>,
    pub ended_by: Option<String>,
    pub ended_at: Option<DateTime<Utc>>,
}

impl From<DestinationRow> for Destination {
    fn from(d: DestinationRow) -> Destination {
        Destination {
            category_code: d.category_code,
            unit_name: d.unit_name,
            location: d.location,
            case_id: d.case_id,
            approved_at: from_millis(d.approved_at),
            status: d.status,
            ended_by_case: d.ended_by_case,
            ended_by: d.ended_by,
            ended_at: d.ended_at.map(from_millis),
        }
    }
}

/// The fields of a registration (`reference/destination_categories.toml`) that name the
/// unit of the destination record, first found wins: the employer, the business, the
/// admitting school, the recruiting office.
const REGISTERED_UNIT_FIELDS: &[&str] = &[
    "unit_name",
    "enterprise_name",
    "admitting_school",
    "school",
    "recruiting_office",
];

/// The fields of a registration that say where: a region code, or a country abroad.
const REGISTERED_LOCATION_FIELDS: &[&str] = &["location", "country_region"];

impl Engine {
    /// Carries out one effect of `transition` on the case as `row` now stands.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn effect(
        &self,
        tx: &mut Tx,
        def: &Definition,
        row: &CaseRow,
        data: &Value,
        parties: &Parties,
        effect: &Effect,
        transition: &str,
        now_ms: i64,
    ) -> Result<()> {
        let ending = Ending {
            case_id: &row.id,
            transition,
            at: now_ms,
        };
        match effect {
            Effect::RecordDestination => {
                let record = destination_row(def, row, data, parties, now_ms);
                tx.record_destination(&record, &ending).await?;
            }
            Effect::WithdrawDestination => tx.withdraw_destination(&row.student_id, &row.id, &ending).await?,
            Effect::AssignAgreementNumber => {} // done by `apply`, with the row's write
            Effect::Render(slot) => self.request_render(tx, row, slot, now_ms).await?,
        }
        Ok(())
    }
}

/// The record a case's approval writes. A registration (a `destination` field) names its
/// own category and unit; an agreement path writes the definition's code and the
/// employer (its name as read with the case).
fn destination_row(def: &Definition, row: &CaseRow, data: &Value, parties: &Parties, now_ms: i64) -> DestinationRow {
    // A registration: the case's field of kind `destination`, wherever it is kept.
    let registration = def
        .destination_field
        .as_deref()
        .and_then(|path| crate::definition::data_at(path, data))
        .filter(|d| d.get("category").is_some());
    let category = registration
        .and_then(|d| d.get("category"))
        .and_then(Value::as_str)
        .or(def.destination.as_deref())
        .unwrap_or_default();
    let registered = |names: &[&str]| {
        let fields = registration.and_then(|d| d.get("fields"))?;
        names
            .iter()
            .find_map(|n| fields.get(*n).and_then(Value::as_str))
            .map(str::to_string)
    };
    // The paths are the definition's (`[destination_record]`), never named here.
    let mapped = |path: &Option<String>| crate::definition::DestinationRecordMap::read(path, data);
    let map = &def.destination_record;
    let unit = match (&row.employer_id, registration) {
        (_, Some(_)) => registered(REGISTERED_UNIT_FIELDS),
        (_, None) if map.unit.is_some() => mapped(&map.unit),
        (Some(_), None) => parties.employer.get("name").and_then(Value::as_str).map(str::to_string),
        (None, None) => None,
    };
    let location = match registration {
        Some(_) => registered(REGISTERED_LOCATION_FIELDS),
        None => mapped(&map.location),
    };
    DestinationRow {
        id: Uuid::now_v7().to_string(),
        student_id: row.student_id.clone(),
        category_code: category.to_string(),
        unit_name: unit,
        location,
        case_id: row.id.clone(),
        approved_at: now_ms,
        data: data.to_string(),
        status: "in_force".into(),
        ended_by_case: None,
        ended_by: None,
        ended_at: None,
    }
}

impl Engine {
    /// Issues the agreement number (协议书编号: year, school, serial, check character)
    /// and its verification code, once per case.
    pub(super) async fn assign_agreement_number(
        &self,
        tx: &mut Tx,
        case: &CaseRef,
        data: &mut Value,
        now: DateTime<Utc>,
    ) -> Result<()> {
        if data.pointer("/agreement/number").is_some() {
            return Ok(());
        }
        let year = chrono::Datelike::year(&now.with_timezone(&chrono_tz::Asia::Shanghai));
        let seq = tx.next_counter(&format!("agreement:{}:{year}", case.school_id)).await?;
        let number = crate::render::agreement_number(year, &case.school_id, seq as u64);
        let code = crate::render::verification_code(&self.settings.agreement_key, &number);
        tx.insert_agreement(&number, &case.id, &code, millis(now)).await?;
        super::input::set_path(
            data,
            "agreement",
            json!({ "number": number, "verification_code": code, "issued_at": now.to_rfc3339() }),
        );
        Ok(())
    }

    /// Marks a render as pending and pushes the job that does it.
    async fn request_render(&self, tx: &mut Tx, row: &CaseRow, slot: &str, now_ms: i64) -> Result<()> {
        // Always taken: the case's version only grows under its lock.
        tx.request_render(&row.id, slot, row.version, now_ms).await?;
        let job = Job::Render {
            case_id: row.id.clone(),
            slot: slot.to_string(),
            case_version: row.version,
        };
        self.push(tx, &job, from_millis(now_ms)).await
    }

    /// The destination record in force for a student (R2).
    pub async fn destination(&self, student_id: &str) -> Result<Option<Destination>> {
        let mut tx = self.db.read().await?;
        let row = tx.destination(student_id).await?;
        tx.rollback().await?;
        Ok(row.map(Destination::from))
    }

    /// A student's destination history: the record in force first, then the withdrawn
    /// and replaced ones, newest first.
    pub async fn destinations(&self, student_id: &str) -> Result<Vec<Destination>> {
        let mut tx = self.db.read().await?;
        let rows = tx.destinations(student_id).await?;
        tx.rollback().await?;
        Ok(rows.into_iter().map(Destination::from).collect())
    }
}
