-- PostgreSQL only (issue 17): document bytes are stored out of line and uncompressed. PDFs
-- and PNGs are compressed already; PostgreSQL's default (try pglz, then store) spent ~7 ms
-- of a database process's CPU on each render's bytes for nothing, at the priority of
-- every request's statements.
ALTER TABLE blobs ALTER COLUMN bytes SET STORAGE EXTERNAL;
