//! The store conformance suite: every behaviour a [`Store`](crate::Store) promises,
//! written once as plain async functions and run against every backend by
//! [`store_conformance_tests!`](crate::store_conformance_tests).
//!
//! A backend's test file provides an async factory returning a [`StoreFixture`] (or `None`
//! to skip, saying why) and invokes the macro once.

mod agents;
mod changes;
mod claims;
mod concurrency;
mod drain;
mod events;
mod exceptions;
mod helpers;
mod housekeeping;
mod lifecycle;
mod locks;
mod logs;
mod runners;
mod tasks;
mod usage;
mod verification;

use std::sync::Arc;

use async_trait::async_trait;

use crate::store::Store;

pub use agents::*;
pub use changes::*;
pub use claims::*;
pub use concurrency::*;
pub use drain::{DrainReport, check_drained, drain_queue};
pub use events::*;
pub use exceptions::*;
pub use housekeeping::*;
pub use lifecycle::*;
pub use locks::*;
pub use logs::*;
pub use runners::*;
pub use tasks::*;
pub use usage::*;
pub use verification::*;

/// A store under test, with whatever it needs cleaned up afterwards.
#[async_trait]
pub trait StoreFixture: Send + Sync {
    /// The store to test.
    fn store(&self) -> Arc<dyn Store>;

    /// Removes what the fixture created (a database schema, a file).
    async fn teardown(self: Box<Self>);
}

/// A fixture with nothing to clean up.
#[derive(Debug)]
pub struct PlainFixture(pub Arc<dyn Store>);

#[async_trait]
impl StoreFixture for PlainFixture {
    fn store(&self) -> Arc<dyn Store> {
        self.0.clone()
    }

    async fn teardown(self: Box<Self>) {}
}

/// Runs one conformance case on a fresh fixture, tearing it down even when the case fails.
pub async fn run_case<F, Fut>(fixture: Option<Box<dyn StoreFixture>>, case: F)
where
    F: FnOnce(Arc<dyn Store>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(fixture) = fixture else {
        return;
    };
    let outcome = tokio::spawn(case(fixture.store())).await;
    fixture.teardown().await;
    if let Err(failure) = outcome {
        std::panic::resume_unwind(failure.into_panic());
    }
}

/// Stamps out one `#[tokio::test]` per conformance case for a backend.
///
/// `$factory` is an async function returning `Option<Box<dyn StoreFixture>>`; `None`
/// skips the case (the factory prints why).
#[macro_export]
macro_rules! store_conformance_tests {
    ($factory:path) => {
        $crate::store_conformance_tests!(@cases $factory;
            task_is_created_queued_with_defaults,
            bad_task_input_is_a_typed_error,
            idempotency_key_returns_the_existing_task,
            dependencies_must_exist,
            batch_creation_is_all_or_nothing,
            unknown_ids_are_not_found,
            task_list_filters_sorts_and_pages,
            task_list_keyset_pages_cover_every_order,
            a_retry_note_stays_with_the_task,
            system_stats_count_every_state,
            activity_is_tallied_by_hour,
            task_edits_are_validated_and_refused_while_running,
            waiting_tasks_can_be_edited_and_released,
            unicode_and_very_long_text_round_trip,
            attempt_runs_from_claim_to_completion,
            stale_or_missing_lease_is_a_conflict_without_side_effects,
            expired_lease_requeues_then_fails,
            cancellation_of_queued_and_running_tasks,
            failed_task_is_retried_after_its_delay,
            illegal_transitions_are_typed_errors,
            dependencies_gate_assignment,
            deletion_cascades_and_is_guarded,
            agent_slots_are_listed_and_transitioned,
            agents_are_searched_and_sorted,
            agent_costs_sum_their_attempts,
            runner_sessions_are_found_by_token_and_revoked,
            runners_state_their_host_version_and_backends,
            the_first_admin_token_hash_is_kept,
            setup_tokens_are_single_use_and_expire,
            logs_page_without_skipping_ties,
            logs_are_validated_and_capped,
            logs_are_searched_by_their_text,
            log_counts_stop_at_the_limit,
            task_activity_is_counted_and_listed_by_task,
            attempt_logs_need_the_live_lease,
            verification_results_are_numbered_per_task,
            runner_evidence_needs_the_live_lease,
            a_completion_after_its_lease_was_lost_is_kept_on_its_attempt,
            max_attempts_caps_attempts_across_retries_and_expiries,
            a_stopping_runner_gives_its_task_back_without_using_an_attempt,
            a_completion_resolves_the_stuck_exception_of_its_task,
            an_unverified_change_completes_and_says_so,
            an_attempt_ends_with_its_evidence_at_once,
            attempt_changes_are_kept_with_the_end_of_their_attempt,
            changes_under_a_stale_lease_are_not_kept,
            an_attempt_keeps_the_backend_and_model_that_ran_it,
            usage_is_summed_per_day_runner_model_and_task,
            a_failure_that_is_not_retried_asks_a_human,
            exceptions_deduplicate_and_sort_by_urgency,
            exception_decisions_follow_the_state_machine,
            events_are_ordered_and_resumable,
            a_reader_following_the_log_never_skips_an_event,
            concurrent_edits_of_one_task_are_not_lost,
            concurrent_assignment_of_one_task_has_one_winner,
            claims_fill_slots_in_queue_order,
            a_batch_is_claimed_in_the_order_given,
            claims_pass_over_tasks_that_are_not_ready,
            claims_look_past_every_task_a_lock_holds_back,
            claims_pass_over_deep_queues_blocked_either_way,
            the_next_time_work_comes_due_is_known,
            claiming_a_named_task_explains_refusals,
            heartbeats_extend_leases_and_carry_signals,
            expired_leases_are_reaped_with_locks_and_exceptions,
            locks_are_exclusive_over_overlapping_paths,
            locks_are_renewed_released_swept_and_forced,
            concurrent_lock_acquisitions_never_overlap,
            quiet_runners_stalled_and_blocked_tasks_are_found,
            named_leases_take_turns,
            retention_prunes_logs_and_events,
            subscribers_wake_on_commits
        );
    };
    (@cases $factory:path; $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                $crate::testing::run_case($factory().await, $crate::testing::$case).await;
            }
        )+
    };
}
