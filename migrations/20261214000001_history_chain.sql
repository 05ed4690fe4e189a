-- The history as evidence (issue 15).
-- `data`: the case data as the transition left it (JSON), so the case at version N — what a
-- render of version N prints — can be read back however late the render runs. NULL for rows
-- written before this migration.
-- `hash`: SHA-256 (hex) of the previous row's hash followed by this row's canonical content
-- (`store::cases::HistoryRow::chain_hash`), written by the one write path in the row's own
-- INSERT. The final agreement carries the hash of the row it was rendered at; recomputing
-- the chain from the stored rows shows whether any row was altered since. NULL for rows
-- written before this migration (a chain restarts after them).
ALTER TABLE history ADD COLUMN data TEXT;
ALTER TABLE history ADD COLUMN hash TEXT;
