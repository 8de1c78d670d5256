-- A task waiting for a dependency that failed or was cancelled is reported as
-- DEPENDENCY_FAILED.

ALTER TABLE exceptions DROP CONSTRAINT exceptions_exception_type_check;
ALTER TABLE exceptions ADD CONSTRAINT exceptions_exception_type_check
    CHECK (exception_type IN ('VERIFICATION_FAILED', 'AGENT_STUCK', 'CONFLICT_DETECTED', 'HIGH_RISK_CODE', 'DEPENDENCY_FAILED', 'UNKNOWN_ERROR'));
