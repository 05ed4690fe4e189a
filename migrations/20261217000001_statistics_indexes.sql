-- Statistics read only indexes (issue 12). Each holds every column a statistic groups or
-- filters graduates by, so counting never reads the wide rows (the synced record):
-- a school's graduates (a range of the first), the province's in id order (the second,
-- merged with the destination records' index without hashing either side), and each
-- graduate's records with what says whether one was in force on a date, and its category.
CREATE INDEX parties_school_graduates
    ON parties (school_id, kind, id, college, major, education_level, origin_province, graduation_date);
CREATE INDEX parties_graduates_by_id
    ON parties (kind, id, school_id, college, major, education_level, origin_province, graduation_date);
CREATE INDEX destinations_student_in_force
    ON destinations (student_id, approved_at, ended_at, category_code);
