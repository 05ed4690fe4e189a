//! The records the platform syncs for the parties of a case: each attribute and the
//! validator kind that checks it. The HTTP sync checks records with these lists, and the
//! definition checker types conditions (`employer.receives_archive`) by them, so the two
//! cannot drift apart.

/// A school (丙方). `id` and `name` are in every record a condition reads.
pub const SCHOOL_FIELDS: &[(&str, &str)] = &[
    ("name", "text"),
    ("office", "text"),
    ("contact", "text"),
    ("phone", "phone"),
    ("address", "text"),
    ("reviewer_email", "email"),
    ("admin_email", "email"),
];

/// A graduate (乙方).
pub const STUDENT_FIELDS: &[(&str, &str)] = &[
    ("school", "text"),
    ("name", "text"),
    ("gender", "text"),
    ("id_number", "id_number"),
    ("student_number", "text"),
    ("college", "text"),
    ("major", "text"),
    ("degree", "text"),
    ("education_level", "text"),
    ("study_years", "text"),
    ("training_mode", "text"),
    ("political_status", "text"),
    ("graduation_date", "date"),
    ("origin", "text"),
    ("origin_region", "region_code"),
    ("phone", "phone"),
    ("email", "email"),
];

/// An employer (甲方).
pub const EMPLOYER_FIELDS: &[(&str, &str)] = &[
    ("name", "text"),
    ("credit_code", "credit_code"),
    ("nature", "text"),
    ("industry", "text"),
    ("location", "region_code"),
    ("address", "text"),
    ("postcode", "postcode"),
    ("contact", "text"),
    ("phone", "phone"),
    ("email", "email"),
    ("receives_archive", "bool"),
    ("receives_hukou", "bool"),
];
