//! Draws a definition: as a Mermaid state diagram (`gradsign workflows graph NAME`), and
//! as SVG with the states coloured by their live cases (the console's definitions page).

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

/// Draws a definition as SVG: a small layered layout (states in columns by their distance
/// from the start, ordered within a column by their predecessors), each state filled by
/// how many live cases sit in it (`live`), transitions as labelled curves. Every text is
/// escaped; the drawing carries no script and no style of its own beyond classes.
pub fn svg(def: &Definition, live: &std::collections::BTreeMap<String, i64>) -> String {
    const W: f64 = 190.0;
    const H: f64 = 50.0;
    const COL: f64 = 256.0;
    const ROW: f64 = 74.0;
    const PAD: f64 = 24.0;
    let layers = layers(def);
    let mut pos: std::collections::BTreeMap<&str, (f64, f64)> = std::collections::BTreeMap::new();
    for (c, layer) in layers.iter().enumerate() {
        for (r, name) in layer.iter().enumerate() {
            pos.insert(name, (PAD + c as f64 * COL, PAD + 16.0 + r as f64 * ROW));
        }
    }
    let rows = layers.iter().map(Vec::len).max().unwrap_or(1) as f64;
    let width = PAD * 2.0 + (layers.len().max(1) as f64 - 1.0) * COL + W;
    let height = PAD * 2.0 + 16.0 + (rows - 1.0) * ROW + H + 40.0;
    let most = live.values().copied().max().unwrap_or(0).max(1) as f64;
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:.0} {height:.0}" class="graph" role="img" aria-label="{}"><title>{}</title><defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" class="arrowhead"/></marker></defs>"#,
        escape(&def.title),
        escape(&format!("{} ({})", def.title, def.name)),
    );
    let edge = |out: &mut String, from: &str, to: &str, label: &str, bend: f64| {
        let (Some(&(x1, y1)), Some(&(x2, y2))) = (pos.get(from), pos.get(to)) else {
            return;
        };
        let (d, lx, ly) = if from == to {
            let (x, y) = (x1 + W - 20.0, y1);
            (format!("M{x:.1},{y:.1} c 30,-34 52,-4 20,8"), x + 26.0, y - 20.0)
        } else if x2 > x1 {
            let (sx, sy, ex, ey) = (x1 + W, y1 + H / 2.0, x2, y2 + H / 2.0);
            let mx = (sx + ex) / 2.0;
            (
                format!(
                    "M{sx:.1},{sy:.1} C{mx:.1},{:.1} {mx:.1},{:.1} {ex:.1},{ey:.1}",
                    sy + bend,
                    ey + bend
                ),
                mx,
                (sy + ey) / 2.0 + bend - 3.0,
            )
        } else {
            // Back or sideways: leave from the bottom and come in from the bottom, below.
            let (sx, sy, ex, ey) = (x1 + W / 2.0 + 10.0, y1 + H, x2 + W / 2.0 - 10.0, y2 + H);
            let dip = sy.max(ey) + 34.0 + bend.abs();
            (
                format!("M{sx:.1},{sy:.1} C{sx:.1},{dip:.1} {ex:.1},{dip:.1} {ex:.1},{ey:.1}"),
                (sx + ex) / 2.0,
                dip - 8.0,
            )
        };
        let _ = write!(
            out,
            r#"<path d="{d}" class="edge" marker-end="url(#arrow)"/><text x="{lx:.1}" y="{ly:.1}" class="edge-label" text-anchor="middle">{}</text>"#,
            escape(label)
        );
    };
    if let Some(to) = &def.start.to
        && let Some(&(x, y)) = pos.get(to.as_str())
    {
        let _ = write!(
            out,
            r#"<circle cx="{:.1}" cy="{:.1}" r="6" class="start"/><text x="{:.1}" y="{:.1}" class="edge-label">{}</text>"#,
            x + 12.0,
            y - 10.0,
            x + 22.0,
            y - 6.0,
            escape(&def.start.name)
        );
    }
    let mut seen: std::collections::BTreeMap<(String, String), usize> = std::collections::BTreeMap::new();
    for t in &def.transitions {
        for from in &t.from {
            let to = t.to.as_deref().unwrap_or(from);
            let n = seen.entry((from.clone(), to.to_string())).or_default();
            let bend = *n as f64 * 12.0;
            *n += 1;
            edge(&mut out, from, to, &t.name, bend);
        }
    }
    for (name, state) in &def.states {
        let Some(&(x, y)) = pos.get(name.as_str()) else {
            continue;
        };
        let n = live.get(name).copied().unwrap_or(0);
        let heat = if n == 0 {
            0
        } else {
            1 + ((n as f64 / most) * 4.0).round() as i64
        };
        let title = state.title.split(" / ").next().unwrap_or(&state.title);
        let _ = write!(
            out,
            r#"<g class="state heat-{heat}{}" data-state="{}"><rect x="{x:.1}" y="{y:.1}" width="{W}" height="{H}" rx="8"/><text x="{:.1}" y="{:.1}" class="state-name">{}</text><text x="{:.1}" y="{:.1}" class="state-title">{}</text><text x="{:.1}" y="{:.1}" class="state-count" text-anchor="end">{n}</text></g>"#,
            if state.terminal { " terminal" } else { "" },
            escape(name),
            x + 10.0,
            y + 20.0,
            escape(name),
            x + 10.0,
            y + 38.0,
            escape(&truncate(title, 11)),
            x + W - 10.0,
            y + 20.0,
        );
    }
    out.push_str("</svg>");
    out
}

/// The states in columns: the start's target first, then by breadth-first distance along
/// the transitions; states the walk does not reach go in a last column. Within a column,
/// states sit near the mean row of the states that lead to them.
fn layers(def: &Definition) -> Vec<Vec<&str>> {
    use std::collections::{BTreeMap, VecDeque};
    let mut depth: BTreeMap<&str, usize> = BTreeMap::new();
    let mut queue = VecDeque::new();
    if let Some(to) = def.start.to.as_deref()
        && def.states.contains_key(to)
    {
        depth.insert(to, 0);
        queue.push_back(to);
    }
    while let Some(s) = queue.pop_front() {
        let d = depth[s];
        for t in def.transitions.iter().filter(|t| t.from.iter().any(|f| f == s)) {
            if let Some(to) = t.to.as_deref()
                && def.states.contains_key(to)
                && !depth.contains_key(to)
            {
                depth.insert(to, d + 1);
                queue.push_back(to);
            }
        }
    }
    let last = depth.values().copied().max().map_or(0, |m| m + 1);
    let mut layers: Vec<Vec<&str>> = Vec::new();
    for name in def.states.keys() {
        let d = depth.get(name.as_str()).copied().unwrap_or(last);
        if layers.len() <= d {
            layers.resize(d + 1, Vec::new());
        }
        layers[d].push(name);
    }
    layers.retain(|l| !l.is_empty());
    // One pass of the barycentre heuristic, column by column.
    for c in 1..layers.len() {
        let previous: BTreeMap<&str, usize> = layers[c - 1].iter().enumerate().map(|(i, s)| (*s, i)).collect();
        let mut keyed: Vec<(f64, &str)> = layers[c]
            .iter()
            .map(|s| {
                let rows: Vec<usize> = def
                    .transitions
                    .iter()
                    .filter(|t| t.to.as_deref() == Some(*s))
                    .flat_map(|t| t.from.iter())
                    .filter_map(|f| previous.get(f.as_str()).copied())
                    .collect();
                let mean = if rows.is_empty() {
                    f64::MAX
                } else {
                    rows.iter().sum::<usize>() as f64 / rows.len() as f64
                };
                (mean, *s)
            })
            .collect();
        keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(b.1)));
        layers[c] = keyed.into_iter().map(|(_, s)| s).collect();
    }
    layers
}

fn truncate(s: &str, chars: usize) -> String {
    if s.chars().count() <= chars {
        s.to_string()
    } else {
        s.chars().take(chars - 1).chain(std::iter::once('…')).collect()
    }
}

/// Escapes text for SVG (XML).
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}
