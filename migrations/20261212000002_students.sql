-- The graduates' data (issue 12): the columns statistics and lists group, filter and
-- search by, kept beside the synced record (`data`, which stays the whole record). The
-- store fills them from the record on every sync; rows synced before this migration have
-- them NULL until synced again.
ALTER TABLE parties ADD COLUMN student_number  TEXT;
ALTER TABLE parties ADD COLUMN college         TEXT;
ALTER TABLE parties ADD COLUMN major           TEXT;
ALTER TABLE parties ADD COLUMN education_level TEXT;   -- 学历 code
ALTER TABLE parties ADD COLUMN origin_province TEXT;   -- 生源地's two-digit GB/T 2260 province
ALTER TABLE parties ADD COLUMN graduation_date TEXT;   -- YYYY-MM-DD

-- A school's graduates by college (statistics, the list of graduates without a destination).
CREATE INDEX parties_school_college ON parties (school_id, kind, college, id);
