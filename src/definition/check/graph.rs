//! The machine as a whole: every state reachable from the start, terminal states that
//! nothing leaves, the liveness lint (a state that waits must have a way out by a party
//! or by one of its own timers), and system transitions that some timer fires.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::Checker;
use crate::definition::{Definition, Role, RoleDef, State, Transition, raw::RawDefinition};

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
            if !state.get_ref().terminal && !has_exit(name, transitions, states, &self.roles) {
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

    /// Claim continuity: a claim held in a state and again in a later one is held in every
    /// state between, unless a state on the way `releases` it on purpose. A state left out
    /// by mistake would let another case take the key in the gap (R1).
    pub(super) fn check_claim_continuity(
        &mut self,
        raw: &RawDefinition,
        transitions: &[Transition],
        states: &BTreeMap<String, State>,
    ) {
        let holds = |state: &str, claim: &str| states.get(state).is_some_and(|s| s.claims.iter().any(|c| c == claim));
        let releases = |state: &str, claim: &str| {
            raw.states
                .get(state)
                .is_some_and(|s| s.get_ref().releases.iter().any(|c| c.get_ref() == claim))
        };
        for claim in raw.claims.keys() {
            let mut reported = BTreeSet::new();
            for t in transitions {
                let Some(gap) = t.to.as_deref() else { continue };
                let Some(from) = t.from.iter().find(|f| holds(f, claim)) else {
                    continue;
                };
                if holds(gap, claim) || releases(gap, claim) || reported.contains(gap) {
                    continue;
                }
                // The states reached from the gap without the claim, until one holds it again.
                let mut came_from: BTreeMap<String, String> = BTreeMap::new();
                let mut queue = VecDeque::from([gap.to_string()]);
                let mut seen = BTreeSet::from([gap.to_string()]);
                let mut again = None;
                while let Some(state) = queue.pop_front() {
                    for next in transitions
                        .iter()
                        .filter(|n| n.from.contains(&state))
                        .filter_map(|n| n.to.as_deref())
                    {
                        if holds(next, claim) {
                            came_from.insert(next.to_string(), state.clone());
                            again = Some(next.to_string());
                            break;
                        }
                        if !releases(next, claim) && seen.insert(next.to_string()) {
                            came_from.insert(next.to_string(), state.clone());
                            queue.push_back(next.to_string());
                        }
                    }
                    if again.is_some() {
                        break;
                    }
                }
                let Some(again) = again else { continue };
                let mut path = vec![again.clone()];
                let mut at = again.as_str();
                while let Some(prev) = came_from.get(at) {
                    path.push(prev.clone());
                    at = prev;
                }
                path.push(from.clone());
                path.reverse();
                reported.insert(gap.to_string());
                if let Some(spanned) = raw.states.get(gap) {
                    self.problem(
                        &spanned.span(),
                        format!(
                            "claim `{claim}` is held in `{from}` and again in `{again}`, but not in `{gap}` between \
                             them (path {}): add it to `claims` of `{gap}`, or write `releases = [\"{claim}\"]` \
                             there if letting go is meant",
                            path.join(" → ")
                        ),
                    );
                }
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
            if Definition::by_system(t)
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
fn has_exit(
    state: &str,
    transitions: &[Transition],
    states: &BTreeMap<String, State>,
    roles: &BTreeMap<String, RoleDef>,
) -> bool {
    let timers = states.get(state).map(|s| s.timers.as_slice()).unwrap_or_default();
    transitions
        .iter()
        .filter(|t| t.from.iter().any(|f| f == state) && t.to.as_deref().is_some_and(|to| to != state))
        .any(|t| {
            let by_party = t.by.iter().any(|r| {
                roles
                    .get(r)
                    .is_some_and(|r| !matches!(r.identity, Role::System | Role::PlatformAdmin))
            });
            let by_timer =
                Definition::by_system(t) && timers.iter().any(|timer| timer.fires() == Some(t.name.as_str()));
            by_party || by_timer
        })
}
