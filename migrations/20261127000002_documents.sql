-- Documents of a case: rendered agreements (PDF and page images) and uploaded files.
-- The bytes live in the data folder under their SHA-256 (one copy per content); these
-- rows say which case, slot and version each belongs to.
CREATE TABLE documents (
    id           TEXT   PRIMARY KEY,
    case_id      TEXT   NOT NULL REFERENCES cases (id),
    slot         TEXT   NOT NULL,        -- 'agreement', 'agreement_preview', or an upload slot
    page         BIGINT NOT NULL,        -- 0: the document itself; n: its n-th page image
    content_type TEXT   NOT NULL,
    file_name    TEXT   NOT NULL,        -- sanitised; shown in Content-Disposition
    size         BIGINT NOT NULL,
    sha256       TEXT   NOT NULL,
    case_version BIGINT NOT NULL,        -- the case version it was made from or added at
    added_by     TEXT   NOT NULL,        -- actor label, or 'system' for renders
    created_at   BIGINT NOT NULL,
    replaced_at  BIGINT                  -- set when a newer render of the slot supersedes it
);
CREATE INDEX documents_case ON documents (case_id, slot, page);
-- The same content in the same slot and page of a case is stored once.
CREATE UNIQUE INDEX documents_same_content ON documents (case_id, slot, page, sha256);

-- The state of each case's renders, so a failure is visible on the case.
CREATE TABLE renders (
    case_id      TEXT   NOT NULL REFERENCES cases (id),
    slot         TEXT   NOT NULL,
    case_version BIGINT NOT NULL,        -- the version the latest request renders
    status       TEXT   NOT NULL,        -- 'pending' | 'done' | 'failed'
    attempts     BIGINT NOT NULL,
    error        TEXT,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (case_id, slot)
);

-- Issued agreement numbers (协议书编号) and their verification codes.
CREATE TABLE agreements (
    number            TEXT   PRIMARY KEY,
    case_id           TEXT   NOT NULL REFERENCES cases (id),
    verification_code TEXT   NOT NULL,
    issued_at         BIGINT NOT NULL
);
CREATE INDEX agreements_case ON agreements (case_id);

-- Named counters (agreement serial numbers per school and year).
CREATE TABLE counters (
    name  TEXT   PRIMARY KEY,
    value BIGINT NOT NULL
);
