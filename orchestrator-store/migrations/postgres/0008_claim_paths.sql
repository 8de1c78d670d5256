-- Where a task's files hint meets locks, for claims to find the next claimable task in
-- the database instead of reading the queue: every key a lock covering one of its paths
-- would have (the root, each ancestor with and without its slash, the path itself), and
-- for each path the range of keys below it, where a lock stands in its way too. Keys
-- compare byte by byte, as lock paths do.

CREATE TABLE task_path_keys (
    task_id  UUID NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    key      TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (task_id, key)
);

CREATE TABLE task_path_ranges (
    task_id      UUID NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    range_start  TEXT COLLATE "C" NOT NULL,
    -- No end for the root, whose range holds every key.
    range_end    TEXT COLLATE "C",
    PRIMARY KEY (task_id, range_start)
);
