//! Destination statistics for a school's officers (their school) and the platform admin
//! (the province, or one school).

use axum::{
    Json,
    extract::{Query, State},
};
use chrono::{NaiveDate, TimeZone};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{
    AppState,
    error::{ApiError, Problem},
    extract::Caller,
};
use crate::{
    definition::Role,
    domain::{
        FieldError,
        rate::{Counts, Formula, Formulas},
    },
    store::{GraduateScope, GroupBy, millis},
};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatisticsQuery {
    /// One school (a platform admin; school staff always get their own school). Absent:
    /// every school (the province).
    pub school: Option<String>,
    /// What to group the graduates by.
    #[param(inline)]
    pub group_by: Option<GroupByParam>,
    /// Count the records in force at the end of this day (China time), YYYY-MM-DD — the
    /// 31 August snapshot is the one schools publish. Default: now.
    #[param(format = Date)]
    pub as_of: Option<String>,
    /// Only graduates of this year (their `graduation_date`'s year).
    #[param(minimum = 1900, maximum = 9999)]
    pub graduation_year: Option<i32>,
    /// The 落实率 formula (`reference/destination_rate.toml`); default: the file's default.
    pub formula: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GroupByParam {
    College,
    Major,
    EducationLevel,
    OriginProvince,
    School,
}

/// Graduates per destination category and group, with 毕业去向落实率, in total and per key.
#[derive(Debug, Serialize, ToSchema)]
pub struct DestinationStatistics {
    /// The school, or null for the province.
    pub school: Option<String>,
    /// The records counted are those in force at the end of this day (China time).
    pub as_of: String,
    pub graduation_year: Option<i32>,
    pub group_by: Option<GroupByParam>,
    pub formula: Formula,
    pub total: Counts,
    /// One entry per key, sorted by key; empty when not grouped.
    pub groups: Vec<Counts>,
}

/// Destination statistics of a school (its staff, or a platform admin naming it) or of
/// the province (a platform admin), counted from the destination records in force.
#[utoipa::path(get, path = "/api/v1/statistics/destinations", operation_id = "destination_statistics", tag = "statistics",
    params(StatisticsQuery),
    responses((status = 200, body = DestinationStatistics, description = "the counts and the rate"),
        (status = 403, body = Problem, description = "neither school staff nor a platform admin"),
        (status = 422, body = Problem, description = "an unknown formula or a malformed date")),
    security(("bearer" = [])))]
pub async fn destinations(
    State(state): State<AppState>,
    Caller(actor): Caller,
    query: Result<Query<StatisticsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<DestinationStatistics>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::malformed(e.body_text()))?;
    let school = reporting_scope(
        &actor,
        q.school.clone(),
        q.graduation_year,
        (
            "only school staff and platform admins read statistics",
            "仅学校工作人员和平台管理员可查看统计",
        ),
    )?;
    let formulas = Formulas::builtin();
    let name = q.formula.as_deref().unwrap_or(&formulas.default);
    let formula = formulas.get(name).cloned().ok_or_else(|| {
        ApiError::invalid(vec![
            FieldError::new(
                "field.not_in_list",
                format!("没有名为“{name}”的落实率口径（可选：{}）", formulas.names().join("、")),
                format!("no formula {name}; one of {}", formulas.names().join(", ")),
            )
            .with_field("formula"),
        ])
    })?;
    let china = chrono_tz::Asia::Shanghai;
    let (as_of, as_of_ms) = match &q.as_of {
        None => {
            let now = state.engine.now();
            (now.with_timezone(&china).date_naive(), millis(now))
        }
        Some(text) => {
            let day = NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
                ApiError::invalid(vec![
                    FieldError::new("date.format", "日期格式应为 YYYY-MM-DD", "must be a date, YYYY-MM-DD")
                        .with_field("as_of"),
                ])
            })?;
            let end = day
                .succ_opt()
                .and_then(|next| next.and_hms_opt(0, 0, 0))
                .and_then(|midnight| china.from_local_datetime(&midnight).single())
                .map(|t| millis(t.with_timezone(&chrono::Utc)) - 1)
                .unwrap_or(i64::MAX);
            (day, end)
        }
    };
    let scope = GraduateScope {
        school: school.clone(),
        graduating: q.graduation_year.map(|y| format!("{y:04}")),
        as_of: as_of_ms,
    };
    let group_by = match q.group_by {
        None => GroupBy::School,
        Some(GroupByParam::College) => GroupBy::College,
        Some(GroupByParam::Major) => GroupBy::Major,
        Some(GroupByParam::EducationLevel) => GroupBy::EducationLevel,
        Some(GroupByParam::OriginProvince) => GroupBy::OriginProvince,
        Some(GroupByParam::School) => GroupBy::School,
    };
    let (total, groups) = state.engine.destination_statistics(&scope, group_by, &formula).await?;
    Ok(Json(DestinationStatistics {
        school,
        as_of: as_of.format("%Y-%m-%d").to_string(),
        graduation_year: q.graduation_year,
        group_by: q.group_by,
        formula,
        total,
        groups: if q.group_by.is_some() { groups } else { Vec::new() },
    }))
}

/// The school a school officer or a platform admin reads for (an officer always their own;
/// an admin the one named, or every school), and the graduation year checked; anyone else is
/// refused with `forbidden` (what they may not do, in English and Chinese).
pub(super) fn reporting_scope(
    actor: &crate::engine::Actor,
    named: Option<String>,
    graduation_year: Option<i32>,
    forbidden: (&str, &str),
) -> Result<Option<String>, ApiError> {
    if graduation_year.is_some_and(|y| !(1900..=9999).contains(&y)) {
        return Err(ApiError::invalid(vec![
            FieldError::new("range", "毕业年份须在 1900 到 9999 之间", "must be 1900 to 9999")
                .with_field("graduation_year"),
        ]));
    }
    match actor.role {
        // The school's figures are the whole school's: staff of one college (二级学院) read
        // their college's cases and graduates, not every college's records.
        Role::SchoolReviewer | Role::SchoolAdmin if actor.college.is_some() => Err(ApiError::forbidden(
            "statistics and destination exports are the whole school's, not one college's",
            "统计和毕业去向导出面向全校，二级学院工作人员不可查看",
        )),
        Role::SchoolReviewer | Role::SchoolAdmin => Ok(actor.school.clone()),
        Role::PlatformAdmin => Ok(named),
        _ => Err(ApiError::forbidden(forbidden.0.to_string(), forbidden.1.to_string())),
    }
}
