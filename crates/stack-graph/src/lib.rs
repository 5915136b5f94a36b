//! The dependency graph of services.
//!
//! An edge `a -> b` means "a depends on b": b starts first and stops last.
//! Edges come from `depends_on`, `network_mode: service:x` and
//! `volumes_from`. The graph gives a start order in parallel waves, the
//! reverse for stopping, cycle reports, and DOT / Mermaid renderings.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use petgraph::graphmap::DiGraphMap;

/// Why one service depends on another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EdgeKind {
    DependsOn,
    NetworkMode,
    VolumesFrom,
}

impl EdgeKind {
    pub fn label(self) -> &'static str {
        match self {
            EdgeKind::DependsOn => "depends_on",
            EdgeKind::NetworkMode => "network_mode",
            EdgeKind::VolumesFrom => "volumes_from",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Edge {
    pub from: String,
    pub to: String,
    pub kind: EdgeKind,
    /// Extra words for renderings (`service_healthy`).
    pub detail: Option<String>,
}

/// A dependency cycle, as the list of services around it (first repeated last).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cycle(pub Vec<String>);

impl std::fmt::Display for Cycle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self.0.iter().map(|n| format!("`{n}`")).collect();
        f.write_str(&names.join(" -> "))
    }
}

#[derive(Clone, Debug, Default)]
pub struct Graph {
    nodes: Vec<String>,
    edges: Vec<Edge>,
}

impl Graph {
    /// A graph of `nodes` (in a stable order) and edges between them. Edges to
    /// unknown nodes are ignored (the loader reports them).
    pub fn new(
        nodes: impl IntoIterator<Item = String>,
        edges: impl IntoIterator<Item = Edge>,
    ) -> Self {
        let mut nodes: Vec<String> = nodes.into_iter().collect();
        nodes.sort();
        nodes.dedup();
        let edges = edges
            .into_iter()
            .filter(|e| nodes.contains(&e.from) && nodes.contains(&e.to))
            .collect();
        Graph { nodes, edges }
    }

    /// The graph of a project's services.
    pub fn from_project(p: &stack_model::Project) -> Self {
        let mut edges: Vec<Edge> = Vec::new();
        for (name, s) in &p.services {
            let mut specific = Vec::new();
            if let Some(other) = s
                .network_mode
                .as_deref()
                .and_then(|m| m.strip_prefix("service:"))
            {
                specific.push(Edge {
                    from: name.clone(),
                    to: other.to_string(),
                    kind: EdgeKind::NetworkMode,
                    detail: None,
                });
            }
            for v in &s.volumes_from {
                let target = v.split(':').next().unwrap_or_default();
                if !target.starts_with("container") {
                    specific.push(Edge {
                        from: name.clone(),
                        to: target.to_string(),
                        kind: EdgeKind::VolumesFrom,
                        detail: None,
                    });
                }
            }
            for (dep, cfg) in &s.depends_on {
                // The loader adds a dependency for network_mode and volumes_from; show the specific reason once.
                if specific.iter().any(|e| e.to == *dep) {
                    continue;
                }
                edges.push(Edge {
                    from: name.clone(),
                    to: dep.clone(),
                    kind: EdgeKind::DependsOn,
                    detail: Some(cfg.condition.clone()).filter(|c| c != "service_started"),
                });
            }
            edges.extend(specific);
        }
        Graph::new(p.services.keys().cloned(), edges)
    }

    pub fn nodes(&self) -> &[String] {
        &self.nodes
    }

    pub fn edges(&self) -> &[Edge] {
        &self.edges
    }

    fn petgraph(&self) -> DiGraphMap<usize, ()> {
        let idx: BTreeMap<&str, usize> = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i))
            .collect();
        let mut g = DiGraphMap::new();
        for i in 0..self.nodes.len() {
            g.add_node(i);
        }
        for e in &self.edges {
            g.add_edge(idx[e.from.as_str()], idx[e.to.as_str()], ());
        }
        g
    }

    /// Every elementary cycle found through strongly connected components:
    /// one cycle per component, plus self-loops.
    pub fn cycles(&self) -> Vec<Cycle> {
        let g = self.petgraph();
        let mut out = Vec::new();
        for scc in petgraph::algo::tarjan_scc(&g) {
            let looped = scc.len() > 1 || g.contains_edge(scc[0], scc[0]);
            if !looped {
                continue;
            }
            // Walk from the smallest member along edges inside the component until we return.
            let members: std::collections::BTreeSet<usize> = scc.iter().copied().collect();
            let start = *members.iter().next().unwrap_or(&scc[0]);
            let mut path = vec![start];
            let mut cur = start;
            loop {
                let next = g.neighbors(cur).filter(|n| members.contains(n)).min();
                let Some(next) = next else { break };
                if let Some(pos) = path.iter().position(|p| *p == next) {
                    let mut cyc: Vec<String> =
                        path[pos..].iter().map(|i| self.nodes[*i].clone()).collect();
                    cyc.push(self.nodes[next].clone());
                    out.push(Cycle(cyc));
                    break;
                }
                path.push(next);
                cur = next;
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Start order in waves: every service of a wave can start in parallel
    /// once the waves before it are up. `Err` names the cycles.
    pub fn waves(&self) -> Result<Vec<Vec<String>>, Vec<Cycle>> {
        let cycles = self.cycles();
        if !cycles.is_empty() {
            return Err(cycles);
        }
        let mut remaining: Vec<&String> = self.nodes.iter().collect();
        let mut done: Vec<&str> = Vec::new();
        let mut waves = Vec::new();
        while !remaining.is_empty() {
            let wave: Vec<String> = remaining
                .iter()
                .filter(|n| {
                    self.edges
                        .iter()
                        .filter(|e| e.from == ***n)
                        .all(|e| done.contains(&e.to.as_str()))
                })
                .map(|n| (*n).clone())
                .collect();
            remaining.retain(|n| !wave.contains(n));
            done.extend(
                self.nodes
                    .iter()
                    .filter(|n| wave.contains(n))
                    .map(String::as_str),
            );
            waves.push(wave);
        }
        Ok(waves)
    }

    /// Stop order: the start waves reversed.
    pub fn stop_waves(&self) -> Result<Vec<Vec<String>>, Vec<Cycle>> {
        let mut w = self.waves()?;
        w.reverse();
        Ok(w)
    }

    /// `names` and everything they depend on, transitively.
    pub fn with_dependencies(&self, names: &[String]) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut todo: Vec<String> = names.to_vec();
        while let Some(n) = todo.pop() {
            if out.contains(&n) {
                continue;
            }
            todo.extend(
                self.edges
                    .iter()
                    .filter(|e| e.from == n)
                    .map(|e| e.to.clone()),
            );
            out.push(n);
        }
        out.sort();
        out
    }

    pub fn to_dot(&self, project: &str) -> String {
        let mut s = format!("digraph \"{}\" {{\n  rankdir=BT;\n", escape(project));
        for n in &self.nodes {
            let _ = writeln!(s, "  \"{}\";", escape(n));
        }
        for e in &self.edges {
            let label = match &e.detail {
                Some(d) => format!("{}: {d}", e.kind.label()),
                None => e.kind.label().to_string(),
            };
            let _ = writeln!(
                s,
                "  \"{}\" -> \"{}\" [label=\"{}\"];",
                escape(&e.from),
                escape(&e.to),
                escape(&label)
            );
        }
        s.push_str("}\n");
        s
    }

    pub fn to_mermaid(&self) -> String {
        let id = |n: &str| n.replace(|c: char| !c.is_ascii_alphanumeric() && c != '_', "_");
        let mut s = String::from("flowchart BT\n");
        for n in &self.nodes {
            let _ = writeln!(s, "  {}[\"{}\"]", id(n), n);
        }
        for e in &self.edges {
            let label = match &e.detail {
                Some(d) => format!("{}: {d}", e.kind.label()),
                None => e.kind.label().to_string(),
            };
            let _ = writeln!(s, "  {} -->|{}| {}", id(&e.from), label, id(&e.to));
        }
        s
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn edge(a: &str, b: &str) -> Edge {
        Edge {
            from: a.into(),
            to: b.into(),
            kind: EdgeKind::DependsOn,
            detail: None,
        }
    }

    #[test]
    fn waves_and_cycles() {
        let g = Graph::new(
            ["web", "db", "cache", "worker"].map(String::from),
            [
                edge("web", "db"),
                edge("web", "cache"),
                edge("worker", "web"),
            ],
        );
        assert_eq!(
            g.waves().unwrap(),
            vec![vec!["cache", "db"], vec!["web"], vec!["worker"]]
        );
        let g = Graph::new(
            ["a", "b", "c"].map(String::from),
            [edge("a", "b"), edge("b", "c"), edge("c", "a")],
        );
        assert_eq!(
            g.cycles(),
            vec![Cycle(vec!["a".into(), "b".into(), "c".into(), "a".into()])]
        );
        assert_eq!(g.cycles()[0].to_string(), "`a` -> `b` -> `c` -> `a`");
        let g = Graph::new(["a"].map(String::from), [edge("a", "a")]);
        assert_eq!(g.cycles().len(), 1);
    }

    proptest! {
        /// In any acyclic graph, every service starts in a later wave than all it depends on.
        #[test]
        fn waves_respect_every_edge(n in 1usize..12, raw in proptest::collection::vec((0usize..12, 0usize..12), 0..40)) {
            let names: Vec<String> = (0..n).map(|i| format!("s{i:02}")).collect();
            // Only edges from a higher to a lower index: acyclic by construction.
            let edges: Vec<Edge> = raw.into_iter().filter(|(a, b)| a < &n && b < &n && a > b)
                .map(|(a, b)| edge(&names[a], &names[b])).collect();
            let g = Graph::new(names.clone(), edges.clone());
            let waves = g.waves().unwrap();
            let wave_of = |s: &str| waves.iter().position(|w| w.iter().any(|x| x == s)).unwrap();
            prop_assert_eq!(waves.iter().map(Vec::len).sum::<usize>(), n);
            for e in &edges {
                prop_assert!(wave_of(&e.from) > wave_of(&e.to));
            }
        }

        /// Adding an edge back from the bottom to the top of a chain always yields a reported cycle.
        #[test]
        fn chains_closed_into_loops_are_cycles(n in 1usize..10) {
            let names: Vec<String> = (0..n).map(|i| format!("s{i}")).collect();
            let mut edges: Vec<Edge> = (1..n).map(|i| edge(&names[i], &names[i - 1])).collect();
            edges.push(edge(&names[0], &names[n - 1]));
            let g = Graph::new(names, edges);
            prop_assert_eq!(g.cycles().len(), 1);
            prop_assert!(g.waves().is_err());
        }
    }
}
