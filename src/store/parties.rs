//! The parties' reference data (schools, students, employers) as the platform syncs it.

use super::{Result, Tx, on_tx};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartyKind {
    School,
    Student,
    Employer,
}

impl PartyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PartyKind::School => "school",
            PartyKind::Student => "student",
            PartyKind::Employer => "employer",
        }
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PartyRow {
    pub kind: String,
    pub id: String,
    pub school_id: Option<String>,
    pub name: String,
    pub data: String,
    pub updated_at: i64,
}

impl PartyRow {
    pub fn data_json(&self) -> serde_json::Value {
        serde_json::from_str(&self.data).unwrap_or_default()
    }
}

/// The columns a student's record fills beside its JSON, for statistics and lists.
struct StudentColumns {
    student_number: Option<String>,
    college: Option<String>,
    major: Option<String>,
    education_level: Option<String>,
    origin_province: Option<String>,
    graduation_date: Option<String>,
}

impl StudentColumns {
    fn of(row: &PartyRow) -> StudentColumns {
        let data = if row.kind == "student" {
            row.data_json()
        } else {
            serde_json::Value::Null
        };
        let text = |key: &str| data.get(key).and_then(serde_json::Value::as_str).map(str::to_string);
        StudentColumns {
            student_number: text("student_number"),
            college: text("college"),
            major: text("major"),
            education_level: text("education_level"),
            origin_province: text("origin_region").and_then(|r| r.get(..2).map(str::to_string)),
            graduation_date: text("graduation_date"),
        }
    }
}

impl Tx {
    /// Inserts or replaces a party record; returns true when it was new.
    pub async fn put_party(&mut self, row: &PartyRow) -> Result<bool> {
        let existed = self.party(row.kind_enum(), &row.id).await?.is_some();
        let sql = "INSERT INTO parties (kind, id, school_id, name, data, updated_at,
                     student_number, college, major, education_level, origin_province, graduation_date)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
                   ON CONFLICT (kind, id) DO UPDATE SET school_id = excluded.school_id, name = excluded.name,
                     data = excluded.data, updated_at = excluded.updated_at,
                     student_number = excluded.student_number, college = excluded.college, major = excluded.major,
                     education_level = excluded.education_level, origin_province = excluded.origin_province,
                     graduation_date = excluded.graduation_date";
        let columns = StudentColumns::of(row);
        on_tx!(self, |c| sqlx::query(sql)
            .bind(&row.kind)
            .bind(&row.id)
            .bind(&row.school_id)
            .bind(&row.name)
            .bind(&row.data)
            .bind(row.updated_at)
            .bind(&columns.student_number)
            .bind(&columns.college)
            .bind(&columns.major)
            .bind(&columns.education_level)
            .bind(&columns.origin_province)
            .bind(&columns.graduation_date)
            .execute(c)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(!existed)
    }

    /// The parties of one case in one query: its student, its employer (when it has
    /// one) and its school (`None`: the student's), in no particular order.
    pub async fn case_parties(
        &mut self,
        student: &str,
        employer: Option<&str>,
        school: Option<&str>,
    ) -> Result<Vec<PartyRow>> {
        let sql = "SELECT kind, id, school_id, name, data, updated_at FROM parties
                   WHERE (kind = 'student' AND id = $1) OR (kind = 'employer' AND id = $2)
                      OR (kind = 'school'
                          AND id = COALESCE($3, (SELECT s.school_id FROM parties s WHERE s.kind = 'student' AND s.id = $1)))";
        Ok(on_tx!(self, |c| sqlx::query_as::<_, PartyRow>(sql)
            .bind(student)
            .bind(employer)
            .bind(school)
            .fetch_all(c)
            .await)?)
    }

    pub async fn party(&mut self, kind: PartyKind, id: &str) -> Result<Option<PartyRow>> {
        let sql = "SELECT kind, id, school_id, name, data, updated_at FROM parties WHERE kind = $1 AND id = $2";
        Ok(on_tx!(self, |c| sqlx::query_as::<_, PartyRow>(sql)
            .bind(kind.as_str())
            .bind(id)
            .fetch_optional(c)
            .await)?)
    }
}

impl PartyRow {
    fn kind_enum(&self) -> PartyKind {
        match self.kind.as_str() {
            "school" => PartyKind::School,
            "student" => PartyKind::Student,
            _ => PartyKind::Employer,
        }
    }
}
