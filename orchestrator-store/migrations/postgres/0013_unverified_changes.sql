-- A change that touches only files no check applies to (documentation, data) is
-- UNVERIFIED rather than failed, and a verification result keeps every stage's report.

ALTER TABLE tasks DROP CONSTRAINT tasks_verification_status_check;
ALTER TABLE tasks ADD CONSTRAINT tasks_verification_status_check
    CHECK (verification_status IN ('PENDING', 'PASSED', 'FAILED', 'UNVERIFIED'));

ALTER TABLE verification_results ADD COLUMN unverified BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE verification_results ADD COLUMN stages JSONB NOT NULL DEFAULT '[]';
