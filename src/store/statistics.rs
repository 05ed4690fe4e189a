//! Statistics over the graduates and the destination records the workflows wrote (R2):
//! one grouped count, on either backend.

use super::{
    Result, Tx,
    lists::{Bind, Conditions, fetch_all_with},
    on_tx,
};

/// What graduates are grouped by. Each names one column of `parties`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    College,
    Major,
    EducationLevel,
    OriginProvince,
    School,
}

impl GroupBy {
    fn column(self) -> &'static str {
        match self {
            GroupBy::College => "s.college",
            GroupBy::Major => "s.major",
            GroupBy::EducationLevel => "s.education_level",
            GroupBy::OriginProvince => "s.origin_province",
            GroupBy::School => "s.school_id",
        }
    }
}

/// Which graduates a statistic counts.
#[derive(Debug, Clone, Default)]
pub struct GraduateScope {
    /// One school, or the whole province.
    pub school: Option<String>,
    /// Graduates whose `graduation_date` starts with this (a year: `2026`).
    pub graduating: Option<String>,
    /// Records in force at this moment (epoch ms) count.
    pub as_of: i64,
}

impl Tx {
    /// `(group key, category code of the record in force at `as_of` or none, graduates)`.
    /// A record counts when it was approved by `as_of` and not ended by then, so the
    /// count on a past date is the count that was true then.
    pub async fn destination_counts(
        &mut self,
        scope: &GraduateScope,
        group_by: GroupBy,
    ) -> Result<Vec<(Option<String>, Option<String>, i64)>> {
        let key = group_by.column();
        let mut w = Conditions::default();
        w.sql.push("s.kind = 'student'".into());
        let as_of = w.next(Bind::Int(scope.as_of));
        if let Some(school) = &scope.school {
            w.text("s.school_id = ?", school);
        }
        if let Some(year) = &scope.graduating {
            w.text("s.graduation_date LIKE ?", &format!("{year}%"));
        }
        let in_force = format!("d.approved_at <= {as_of} AND (d.ended_at IS NULL OR d.ended_at > {as_of})");
        let sql = if scope.school.is_some() {
            // One school: each graduate's record found through its index (a few
            // thousand lookups), rather than hashing every record in the province.
            format!(
                "SELECT k, code, COUNT(*) AS n FROM (
                   SELECT {key} AS k,
                          (SELECT d.category_code FROM destinations d
                            WHERE d.student_id = s.id AND {in_force} LIMIT 1) AS code
                   FROM parties s {}
                 ) g GROUP BY k, code",
                w.where_clause()
            )
        } else {
            // The province: one pass over both tables. On PostgreSQL both come in student
            // order from their covering indexes and are merged; the planner's own choice,
            // hashing 600,000 records, took 1.5× as long at 1,000,000 graduates
            // (bench/schools.py), so it is not offered for this one statement.
            if let Tx::Postgres(c) = self {
                sqlx::query("SET LOCAL enable_hashjoin = off").execute(&mut **c).await?;
            }
            format!(
                "SELECT {key} AS k, d.category_code, COUNT(*) AS n
                 FROM parties s LEFT JOIN destinations d ON d.student_id = s.id AND {in_force}
                 {} GROUP BY {key}, d.category_code",
                w.where_clause()
            )
        };
        Ok(fetch_all_with!(
            self,
            (Option<String>, Option<String>, i64),
            sql.as_str(),
            &w.binds
        )?)
    }
}
