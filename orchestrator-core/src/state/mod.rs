//! One explicit state machine per entity, each a pure function
//! `transition(state, event) -> Result<state, InvalidTransition>` in its own module.
//!
//! The machines decide *whether* a status may change; [`crate::change`] decides what else
//! an operation writes (the attempt, the agent slot, the events) and stores persist that.

pub mod agent;
pub mod exception;
pub mod file_lock;
pub mod runner_session;
pub mod task;

use crate::error::InvalidTransition;

/// What every state machine offers, so that properties can be checked once for all.
pub trait StateMachine {
    /// The entity's status.
    type State: Copy + Eq + std::fmt::Debug + std::hash::Hash + 'static;
    /// What can happen to it.
    type Event: Copy + Eq + std::fmt::Debug + 'static;

    /// Kind of entity, for error messages.
    const ENTITY: &'static str;
    /// Every state.
    const STATES: &'static [Self::State];
    /// Every event.
    const EVENTS: &'static [Self::Event];
    /// The state every entity is created in.
    const INITIAL: Self::State;

    /// The state after `event`, or why `event` is not allowed in `state`.
    fn transition(state: Self::State, event: Self::Event)
    -> Result<Self::State, InvalidTransition>;

    /// Whether no event leaves `state`.
    fn is_terminal(state: Self::State) -> bool {
        Self::EVENTS
            .iter()
            .all(|event| Self::transition(state, *event).is_err())
    }
}

/// The rejection of `event` in `state`, naming where the event leads and listing what
/// `state` would accept.
pub(crate) fn rejected<M: StateMachine>(
    state: M::State,
    event: M::Event,
    name_state: fn(M::State) -> &'static str,
    name_event: fn(M::Event) -> &'static str,
    accepts: fn(M::State, M::Event) -> Option<M::State>,
) -> InvalidTransition {
    let mut targets = M::STATES.iter().filter_map(|from| accepts(*from, event));
    let to = targets
        .next()
        .filter(|first| targets.all(|other| other == *first))
        .map(|target| name_state(target).to_owned());
    InvalidTransition {
        entity: M::ENTITY,
        from: name_state(state).to_owned(),
        to,
        event: name_event(event).to_owned(),
        allowed: M::EVENTS
            .iter()
            .filter(|candidate| accepts(state, **candidate).is_some())
            .map(|candidate| name_event(*candidate).to_owned())
            .collect(),
    }
}

/// Implements [`StateMachine`] from a partial transition table `accepts`.
macro_rules! state_machine {
    ($machine:ident, $entity:literal, $state:ty, $event:ty, initial = $initial:expr, accepts = $accepts:path) => {
        /// The state machine; see the module documentation.
        #[derive(Debug, Clone, Copy)]
        pub struct $machine;

        impl $crate::state::StateMachine for $machine {
            type State = $state;
            type Event = $event;
            const ENTITY: &'static str = $entity;
            const STATES: &'static [$state] = <$state>::ALL;
            const EVENTS: &'static [$event] = <$event>::ALL;
            const INITIAL: $state = $initial;

            fn transition(
                state: $state,
                event: $event,
            ) -> Result<$state, $crate::error::InvalidTransition> {
                $accepts(state, event).ok_or_else(|| {
                    $crate::state::rejected::<Self>(
                        state,
                        event,
                        |s| s.as_str(),
                        |e| e.as_str(),
                        $accepts,
                    )
                })
            }
        }

        /// The state after `event`, or why `event` is not allowed in `state`.
        pub fn transition(
            state: $state,
            event: $event,
        ) -> Result<$state, $crate::error::InvalidTransition> {
            <$machine as $crate::state::StateMachine>::transition(state, event)
        }
    };
}
pub(crate) use state_machine;

#[cfg(test)]
pub(crate) mod properties;
