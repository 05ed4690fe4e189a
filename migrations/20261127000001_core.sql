-- gradsign core tables. One set of migrations serves SQLite and PostgreSQL: the
-- columns are the same on both; times are milliseconds since the Unix epoch and JSON
-- is kept as text, so every query runs unchanged on either backend.

-- Reference data the platform syncs to us: schools, students, employers.
CREATE TABLE parties (
    kind       TEXT    NOT NULL,            -- 'school' | 'student' | 'employer'
    id         TEXT    NOT NULL,            -- the platform's id
    school_id  TEXT,                        -- students: their school
    name       TEXT    NOT NULL,
    data       TEXT    NOT NULL,            -- the record as synced (JSON)
    updated_at BIGINT  NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE INDEX parties_school ON parties (school_id);

-- Every version of every workflow definition ever used, by content hash.
CREATE TABLE workflow_versions (
    hash         TEXT   PRIMARY KEY,        -- SHA-256 of the source, hex
    name         TEXT   NOT NULL,
    source       TEXT   NOT NULL,
    published_at BIGINT NOT NULL,
    published_by TEXT   NOT NULL
);

-- Cases (instances of a workflow).
CREATE TABLE cases (
    id               TEXT   PRIMARY KEY,
    workflow         TEXT   NOT NULL,
    workflow_hash    TEXT   NOT NULL REFERENCES workflow_versions (hash),
    state            TEXT   NOT NULL,
    version          BIGINT NOT NULL,       -- optimistic version, +1 per transition
    data             TEXT   NOT NULL,       -- JSON
    student_id       TEXT   NOT NULL,
    employer_id      TEXT,
    school_id        TEXT   NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    state_entered_at BIGINT NOT NULL
);
CREATE INDEX cases_student ON cases (student_id, id);
CREATE INDEX cases_employer ON cases (employer_id, id);
CREATE INDEX cases_school ON cases (school_id, id);

-- Append-only history: one row per fired transition.
CREATE TABLE history (
    case_id         TEXT   NOT NULL REFERENCES cases (id),
    seq             BIGINT NOT NULL,        -- = the case version the transition produced
    transition      TEXT   NOT NULL,
    from_state      TEXT,
    to_state        TEXT   NOT NULL,
    actor           TEXT   NOT NULL,        -- role:party
    input           TEXT   NOT NULL,        -- normalised input (JSON)
    at              BIGINT NOT NULL,
    idempotency_key TEXT,
    PRIMARY KEY (case_id, seq)
);

-- Cross-case rules (R1, R3, R5): a key at most one case holds.
CREATE TABLE claims (
    key      TEXT   PRIMARY KEY,
    case_id  TEXT   NOT NULL REFERENCES cases (id),
    taken_at BIGINT NOT NULL
);
CREATE INDEX claims_case ON claims (case_id);

-- Timers are our rows; the apalis job pushed beside each is only the fast path.
CREATE TABLE timers (
    id         TEXT   PRIMARY KEY,
    case_id    TEXT   NOT NULL REFERENCES cases (id),
    state      TEXT   NOT NULL,             -- the state whose entry set it
    fire       TEXT   NOT NULL,             -- the system transition it fires
    due_at     BIGINT NOT NULL,
    status     TEXT   NOT NULL,             -- 'pending' | 'fired' | 'cancelled'
    created_at BIGINT NOT NULL,
    done_at    BIGINT
);
CREATE INDEX timers_due ON timers (status, due_at);
CREATE INDEX timers_case ON timers (case_id, status);

-- The R2 projection: the destination record in force, one per student.
CREATE TABLE destinations (
    student_id    TEXT   PRIMARY KEY,
    category_code TEXT   NOT NULL,
    unit_name     TEXT,
    location      TEXT,
    case_id       TEXT   NOT NULL REFERENCES cases (id),
    approved_at   BIGINT NOT NULL,
    data          TEXT   NOT NULL           -- JSON snapshot of what was approved
);

-- Idempotency-Key answers, per actor: same key and body → the same answer.
CREATE TABLE idempotency_keys (
    actor        TEXT   NOT NULL,
    key          TEXT   NOT NULL,
    request_hash TEXT   NOT NULL,
    status       BIGINT,                    -- NULL while the request runs
    response     TEXT,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (actor, key)
);
