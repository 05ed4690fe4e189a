//! Draws a definition as a Mermaid state diagram (`gradsign workflows graph NAME`).

use std::fmt::Write;

use super::{Definition, TimerDue, duration};

pub fn mermaid(def: &Definition) -> String {
    let mut out = String::from("stateDiagram-v2\n");
    let _ = writeln!(out, "    %% {} ({}) version {}", def.name, def.title, &def.hash[..12]);
    for (name, state) in &def.states {
        let _ = writeln!(out, "    {name}: {name} — {}", state.title.replace(':', "∶"));
    }
    if let Some(to) = &def.start.to {
        let _ = writeln!(out, "    [*] --> {to}: {} ({})", def.start.name, roles(&def.start.by));
    }
    for t in &def.transitions {
        for from in &t.from {
            let to = t.to.as_deref().unwrap_or(from);
            let timer = def.states[from]
                .timers
                .iter()
                .find(|timer| timer.fires() == Some(t.name.as_str()))
                .map(|timer| match &timer.due {
                    TimerDue::After(d) => format!(" after {}", duration::format(*d)),
                    TimerDue::At(field) => format!(" at {field}"),
                });
            let _ = writeln!(
                out,
                "    {from} --> {to}: {} ({}){}",
                t.name,
                roles(&t.by),
                timer.unwrap_or_default()
            );
        }
    }
    for (name, state) in &def.states {
        if state.terminal {
            let _ = writeln!(out, "    {name} --> [*]");
        }
    }
    out
}

fn roles(by: &[String]) -> String {
    by.join(" | ")
}
