-- Publishing definitions without a restart (issue 11): the version new cases of each
-- workflow start on lives here, and every process reads it when it starts a case, so an
-- activation through one process reaches all of them.
CREATE TABLE workflow_active (
    name         TEXT   PRIMARY KEY,
    hash         TEXT   NOT NULL REFERENCES workflow_versions (hash),
    activated_at BIGINT NOT NULL,
    activated_by TEXT   NOT NULL
);

-- Every publish, activation and migration: who, when, what.
CREATE TABLE workflow_audit (
    id       TEXT   PRIMARY KEY,
    at       BIGINT NOT NULL,
    actor    TEXT   NOT NULL,
    action   TEXT   NOT NULL,   -- 'publish' | 'activate' | 'migrate'
    workflow TEXT   NOT NULL,
    hash     TEXT   NOT NULL,
    detail   TEXT   NOT NULL    -- JSON
);
CREATE INDEX workflow_audit_by_workflow ON workflow_audit (workflow, at);
