-- A transaction's writes go out as one statement of data-modifying WITH clauses. A
-- guarded update (`... WHERE id = $1 AND revision = $2`) that touched no row means the
-- row changed since it was read: this function, called on each guarded update's row
-- count by the statement's final SELECT, fails the whole statement then, so none of its
-- writes is kept, inside an explicit transaction or not.
CREATE FUNCTION orchestrator_write_guard(touched bigint, what text) RETURNS integer
LANGUAGE plpgsql AS $$
BEGIN
    IF touched <> 1 THEN
        RAISE EXCEPTION 'the % was changed by someone else meanwhile; retry', what
            USING ERRCODE = 'OR001';
    END IF;
    RETURN 1;
END
$$;
