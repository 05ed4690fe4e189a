-- PostgreSQL only (issue 17): no transaction of ours sends NOTIFY. PostgreSQL serialises the
-- commits of every transaction that sent one, database-wide, on a lock held until the
-- commit is on disk; apalis's trigger sent one for every job pushed, so every transition
-- that queued mail or a render queued behind the others' commits. Our workers do not
-- listen on apalis's channel (they poll, woken by `gradsign_wake`, sent after the commit:
-- see `store::Notifier`).
DROP TRIGGER IF EXISTS notify_workers ON apalis.jobs;
