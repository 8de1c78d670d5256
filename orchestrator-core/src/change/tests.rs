//! Random sequences of task actions, forged leases and clock jumps never break the
//! invariants that tie a task, its attempt and its agent slot together.

use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::ids::AgentId;
use crate::model::{NewAgent, NewTask};

#[derive(Debug, Clone)]
enum Step {
    Act(Choice),
    /// The same action with a lease that is not the live one.
    Forged(Choice),
    Wait(u64),
}

#[derive(Debug, Clone, Copy)]
enum Choice {
    Assign,
    Start,
    BeginVerification,
    Complete,
    Fail,
    AcknowledgeCancel,
    ExpireLease,
    Cancel,
    Retry,
    Reopen,
}

const LEASE_TTL: Duration = Duration::from_secs(30);

fn steps() -> impl Strategy<Value = Vec<Step>> {
    let choice = prop_oneof![
        Just(Choice::Assign),
        Just(Choice::Start),
        Just(Choice::BeginVerification),
        Just(Choice::Complete),
        Just(Choice::Fail),
        Just(Choice::AcknowledgeCancel),
        Just(Choice::ExpireLease),
        Just(Choice::Cancel),
        Just(Choice::Retry),
        Just(Choice::Reopen),
    ];
    let step = prop_oneof![
        6 => choice.clone().prop_map(Step::Act),
        1 => choice.prop_map(Step::Forged),
        2 => (0u64..60_000).prop_map(Step::Wait),
    ];
    proptest::collection::vec(step, 0..80)
}

fn action(choice: Choice, agent: AgentId) -> TaskAction {
    match choice {
        Choice::Assign => TaskAction::Assign {
            agent_id: agent,
            runner_session_id: None,
            lease_ttl: LEASE_TTL,
        },
        Choice::Start => TaskAction::Start,
        Choice::BeginVerification => TaskAction::BeginVerification,
        Choice::Complete => TaskAction::Complete {
            commit_sha: Some("abc".into()),
            usage: Usage::default(),
        },
        Choice::Fail => TaskAction::Fail {
            reason: "broken".into(),
            usage: Usage::default(),
        },
        Choice::AcknowledgeCancel => TaskAction::AcknowledgeCancel,
        Choice::ExpireLease => TaskAction::ExpireLease,
        Choice::Cancel => TaskAction::Cancel,
        Choice::Retry => TaskAction::Retry {
            not_before: None,
            note: None,
        },
        Choice::Reopen => TaskAction::Reopen,
    }
}

struct World {
    task: Task,
    agent: Agent,
    attempt: Option<TaskAttempt>,
}

impl World {
    fn live_lease(&self) -> Option<LeaseRef> {
        Some(LeaseRef {
            task_id: self.task.id,
            attempt: self.task.attempt,
            lease_token: self.task.lease_token?,
        })
    }

    fn apply(&mut self, change: Change) {
        if change.noop {
            return;
        }
        self.task = change.task.expect("a task change");
        if let Some(agent) = change.agent {
            self.agent = agent;
        }
        if let Some(attempt) = change.attempt {
            self.attempt = Some(attempt);
        }
    }

    fn check(&self) -> Result<(), TestCaseError> {
        let task = &self.task;
        let running = task.status.is_running();
        prop_assert_eq!(
            running,
            task.lease_token.is_some(),
            "lease token iff running"
        );
        prop_assert_eq!(
            running,
            task.lease_expires_at.is_some(),
            "lease expiry iff running"
        );
        if running {
            prop_assert_eq!(task.assigned_agent_id, Some(self.agent.id));
        }
        let holds_task = self.agent.current_task_id == Some(task.id);
        prop_assert_eq!(running, holds_task, "the slot holds the task iff it runs");
        prop_assert_eq!(
            holds_task,
            matches!(
                self.agent.status,
                AgentStatus::Working | AgentStatus::Paused
            )
        );
        prop_assert_eq!(
            task.completed_at.is_some(),
            task.status == TaskStatus::Completed
        );
        prop_assert!(task.attempts_used <= task.max_attempts);
        prop_assert!(
            task.cancel_requested <= running,
            "only a running task awaits a stop"
        );
        match &self.attempt {
            Some(attempt) => {
                prop_assert_eq!(attempt.attempt_number, task.attempt);
                prop_assert_eq!(attempt.outcome == AttemptOutcome::Running, running);
                prop_assert_eq!(attempt.ended_at.is_none(), running);
            }
            None => prop_assert_eq!(task.attempt, 0),
        }
        Ok(())
    }
}

proptest! {
    #[test]
    fn random_histories_keep_task_attempt_and_slot_consistent(steps in steps()) {
        let mut now = Timestamp::from_millis(1_000_000).unwrap();
        let mut world = World {
            task: NewTask::new("t", "d").into_task(TaskId::new(), now),
            agent: NewAgent::default().into_agent(AgentId::new(), now),
            attempt: None,
        };
        for step in steps {
            let (choice, lease) = match step {
                Step::Wait(ms) => {
                    now = now.add(Duration::from_millis(ms));
                    // A stuck slot comes back when its runner calls in again.
                    if world.agent.status == AgentStatus::Stuck {
                        world.apply_agent(plan_agent_action(world.agent.clone(), AgentAction::Recover, now));
                    }
                    continue;
                }
                Step::Act(choice) => (choice, world.live_lease()),
                Step::Forged(choice) => (choice, Some(LeaseRef {
                    task_id: world.task.id,
                    attempt: world.task.attempt,
                    lease_token: LeaseToken::new(),
                })),
            };
            let before = world.task.clone();
            let context = TaskContext {
                task: world.task.clone(),
                agent: Some(world.agent.clone()),
                attempt: world.attempt.clone(),
                unfinished_dependencies: Vec::new(),
                lock_conflicts: Vec::new(),
            };
            let planned = plan_task_action(context, action(choice, world.agent.id), lease.as_ref(), now);
            if let Ok(change) = planned {
                if !change.noop {
                    prop_assert!(!change.events.is_empty(), "a write without an event");
                    prop_assert_eq!(change.task.as_ref().unwrap().revision, before.revision + 1);
                }
                prop_assert!(
                    before.status != TaskStatus::Completed || change.noop,
                    "COMPLETED changed"
                );
                if matches!(step_kind(&lease, &world), LeaseKind::Forged) && action(choice, world.agent.id).needs_lease() {
                    prop_assert!(change.noop, "a forged lease changed something");
                }
                world.apply(change);
            }
            world.check()?;
        }
    }
}

enum LeaseKind {
    Live,
    Forged,
}

fn step_kind(lease: &Option<LeaseRef>, world: &World) -> LeaseKind {
    match lease {
        Some(lease) if Some(lease.lease_token) != world.task.lease_token => LeaseKind::Forged,
        _ => LeaseKind::Live,
    }
}

impl World {
    fn apply_agent(&mut self, change: Result<Change>) {
        if let Ok(change) = change
            && let Some(agent) = change.agent
        {
            self.agent = agent;
        }
    }
}
