-- Change after signing (issue 10): destination records are never deleted, and the
-- history keeps what a transition changed, old beside new.

-- What a transition changed: JSON [{"field", "label", "old", "new"}]; NULL when nothing
-- changed (most transitions) or for rows written before this migration.
ALTER TABLE history ADD COLUMN changes TEXT;

-- The R2 projection with its history: every record a student ever had. At most one is
-- in force per student (the partial unique index); a withdrawn or replaced record stays,
-- naming the case that ended it.
CREATE TABLE destination_records (
    id            TEXT   PRIMARY KEY,
    student_id    TEXT   NOT NULL,
    category_code TEXT   NOT NULL,
    unit_name     TEXT,
    location      TEXT,
    case_id       TEXT   NOT NULL REFERENCES cases (id),  -- the case whose approval made it
    approved_at   BIGINT NOT NULL,
    data          TEXT   NOT NULL,                        -- JSON snapshot of what was approved
    status        TEXT   NOT NULL,                        -- 'in_force' | 'withdrawn' | 'replaced'
    ended_by_case TEXT   REFERENCES cases (id),           -- the case whose transition ended it
    ended_by      TEXT,                                   -- that transition's name
    ended_at      BIGINT
);

-- Records in force before this migration carry over; their id is made from what
-- identified them then (one per student and case), the same text on both backends.
INSERT INTO destination_records (id, student_id, category_code, unit_name, location, case_id, approved_at, data, status)
SELECT student_id || ':' || case_id, student_id, category_code, unit_name, location, case_id, approved_at, data, 'in_force'
FROM destinations;

DROP TABLE destinations;
ALTER TABLE destination_records RENAME TO destinations;

CREATE UNIQUE INDEX destinations_in_force ON destinations (student_id) WHERE status = 'in_force';
CREATE INDEX destinations_student ON destinations (student_id, approved_at);
