//! The machine as a whole: every state reachable from the start, terminal states that
//! nothing leaves, the liveness lint (a state that waits must have a way out by a party
//! or by one of its own timers), and system transitions that some timer fires.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::Checker;
use crate::definition::{Role, State, Transition, raw::RawDefinition};

impl Checker<'_> {
    /// Unreachable states, terminal states with a way out, and the liveness lint: a
    /// non-terminal state must be left by a party (not only by the platform admin) or by
    /// a timer of its own, so nobody waits in it, holding claims, for ever.
    pub(super) fn check_graph(
        &mut self,
        raw: &RawDefinition,
        start: &Transition,
        transitions: &[Transition],
        states: &BTreeMap<String, State>,
    ) {
        let mut reached = BTreeSet::new();
        let mut queue: VecDeque<String> = start.to.iter().cloned().collect();
        while let Some(state) = queue.pop_front() {
            if !reached.insert(state.clone()) {
                continue;
            }
            for t in transitions.iter().filter(|t| t.from.contains(&state)) {
                if let Some(to) = &t.to {
                    queue.push_back(to.clone());
                }
            }
        }
        for (name, state) in &raw.states {
            if !reached.contains(name) {
                self.problem(
                    &state.span(),
                    format!("state `{name}` is unreachable: no transition leads to it from the start"),
                );
            }
            if state.get_ref().terminal && transitions.iter().any(|t| t.from.contains(name)) {
                self.problem(
                    &state.span(),
                    format!("state `{name}` is terminal but has transitions leaving it"),
                );
            }
            if !state.get_ref().terminal && !has_exit(name, transitions, states) {
                self.problem(
                    &state.span(),
                    format!(
                        "state `{name}` has no way out by a party or a timer; mark it `terminal = true`, \
                         or add a transition leaving it by a party or fired by one of its timers"
                    ),
                );
            }
        }
    }

    /// A `system` transition happens only when a timer fires it.
    pub(super) fn check_system_transitions(
        &mut self,
        raw: &RawDefinition,
        states: &BTreeMap<String, State>,
        transitions: &[Transition],
    ) {
        for (t, spanned) in transitions.iter().zip(&raw.transitions) {
            if t.by == [Role::System]
                && !states
                    .values()
                    .any(|s| s.timers.iter().any(|timer| timer.fires() == Some(t.name.as_str())))
            {
                self.problem(
                    &spanned.get_ref().name.span(),
                    format!("transition `{}` is by `system` but no timer fires it", t.name),
                );
            }
        }
    }
}

/// Whether a transition leaves `state` for another state, fired by a party (the platform
/// admin's interventions do not count: nobody should wait on them) or by a timer that
/// `state` sets.
fn has_exit(state: &str, transitions: &[Transition], states: &BTreeMap<String, State>) -> bool {
    let timers = states.get(state).map(|s| s.timers.as_slice()).unwrap_or_default();
    transitions
        .iter()
        .filter(|t| t.from.iter().any(|f| f == state) && t.to.as_deref().is_some_and(|to| to != state))
        .any(|t| {
            let by_party = t.by.iter().any(|r| !matches!(r, Role::System | Role::PlatformAdmin));
            let by_timer = t.by == [Role::System] && timers.iter().any(|timer| timer.fires() == Some(t.name.as_str()));
            by_party || by_timer
        })
}
