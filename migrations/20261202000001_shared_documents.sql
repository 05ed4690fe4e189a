-- Document bytes in the database, named by their SHA-256 (one copy per content). On
-- PostgreSQL this is where documents live: processes on different machines share the
-- database and nothing else, so a document one process wrote must be readable by every
-- other. A render or an upload writes its bytes here in the transaction that records the
-- `documents` row. SQLite (one machine) keeps them in the data folder, and this table
-- stays empty. `bytes` is BYTEA on PostgreSQL; SQLite stores the value as a BLOB.
CREATE TABLE blobs (
    sha256     TEXT   PRIMARY KEY,
    size       BIGINT NOT NULL,
    bytes      BYTEA  NOT NULL,
    created_at BIGINT NOT NULL
);
