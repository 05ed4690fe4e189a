-- People, not roles (issue 12): tokens name the person (`sub`, name); the history keeps
-- who fired each transition beside the role label. NULL for the system and for rows and
-- tokens from before tokens named people.
ALTER TABLE history ADD COLUMN actor_sub TEXT;
ALTER TABLE history ADD COLUMN actor_name TEXT;
