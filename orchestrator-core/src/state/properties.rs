//! Properties every state machine must have, checked against an edge table that each
//! machine's tests write out independently of its `accepts` function.

use std::collections::{HashSet, VecDeque};

use super::StateMachine;

/// One allowed transition: from, event, to.
pub(crate) type Edge<S, E> = (S, E, S);

/// The target of `(state, event)` in `edges`, if the table allows it.
pub(crate) fn lookup<S: Copy + Eq, E: Copy + Eq>(
    edges: &[Edge<S, E>],
    state: S,
    event: E,
) -> Option<S> {
    edges
        .iter()
        .find(|(from, on, _)| *from == state && *on == event)
        .map(|(_, _, to)| *to)
}

/// Every state reachable from the initial one.
pub(crate) fn reachable<M: StateMachine>() -> HashSet<M::State> {
    let mut seen = HashSet::from([M::INITIAL]);
    let mut queue = VecDeque::from([M::INITIAL]);
    while let Some(state) = queue.pop_front() {
        for event in M::EVENTS {
            if let Ok(next) = M::transition(state, *event)
                && seen.insert(next)
            {
                queue.push_back(next);
            }
        }
    }
    seen
}

/// Stamps out the property tests of one machine.
macro_rules! check_machine {
    ($machine:ty, $edges:expr, terminal = [$($terminal:expr),* $(,)?]) => {
        use $crate::state::StateMachine as _;

        #[test]
        fn every_state_and_event_pair_matches_the_edge_table() {
            for state in <$machine>::STATES {
                for event in <$machine>::EVENTS {
                    let expected = $crate::state::properties::lookup($edges, *state, *event);
                    let actual = <$machine>::transition(*state, *event).ok();
                    assert_eq!(actual, expected, "{state:?} on {event:?}");
                }
            }
        }

        #[test]
        fn every_state_is_reachable_from_the_initial_one() {
            let reachable = $crate::state::properties::reachable::<$machine>();
            for state in <$machine>::STATES {
                assert!(reachable.contains(state), "{state:?} is unreachable");
            }
        }

        #[test]
        fn the_terminal_states_are_exactly_the_declared_ones() {
            let declared = [$($terminal),*];
            for state in <$machine>::STATES {
                assert_eq!(
                    <$machine>::is_terminal(*state),
                    declared.contains(state),
                    "{state:?}"
                );
            }
        }

        proptest::proptest! {
            #[test]
            fn random_event_sequences_only_take_table_edges(
                events in proptest::collection::vec(
                    proptest::sample::select(<$machine>::EVENTS),
                    0..64,
                )
            ) {
                let mut state = <$machine>::INITIAL;
                let mut terminal_seen = false;
                for event in events {
                    let expected = $crate::state::properties::lookup($edges, state, event);
                    match <$machine>::transition(state, event) {
                        Ok(next) => {
                            proptest::prop_assert_eq!(Some(next), expected);
                            proptest::prop_assert!(!terminal_seen, "left a terminal state");
                            proptest::prop_assert!(<$machine>::STATES.contains(&next));
                            state = next;
                        }
                        Err(rejection) => {
                            proptest::prop_assert_eq!(expected, None);
                            proptest::prop_assert_eq!(rejection.entity, <$machine>::ENTITY);
                        }
                    }
                    terminal_seen |= <$machine>::is_terminal(state);
                }
            }
        }
    };
}
pub(crate) use check_machine;
