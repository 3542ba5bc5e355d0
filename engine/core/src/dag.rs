//! The step graph: indices for steps, edges from `needs`, topological order
//! and cycle paths. Built on petgraph.

use std::collections::HashMap;

use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::Direction;

/// Steps as nodes, an edge `need -> step` for every `needs` entry.
#[derive(Debug, Clone)]
pub struct Dag {
    graph: DiGraph<(), ()>,
    index: HashMap<String, usize>,
}

impl Dag {
    /// `steps` yields each step's id and the ids it needs; unknown needs are ignored.
    pub fn new<'a>(steps: impl IntoIterator<Item = (&'a str, Vec<&'a str>)>) -> Self {
        let steps: Vec<_> = steps.into_iter().collect();
        let mut graph = DiGraph::with_capacity(steps.len(), steps.len());
        let mut index = HashMap::with_capacity(steps.len());
        for (i, (id, _)) in steps.iter().enumerate() {
            graph.add_node(());
            index.entry(id.to_string()).or_insert(i);
        }
        for (i, (_, needs)) in steps.iter().enumerate() {
            for need in needs {
                if let Some(&n) = index.get(*need) {
                    graph.update_edge(NodeIndex::new(n), NodeIndex::new(i), ());
                }
            }
        }
        Self { graph, index }
    }

    pub fn len(&self) -> usize {
        self.graph.node_count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied()
    }

    /// Steps that `step` needs directly.
    pub fn needs(&self, step: usize) -> impl Iterator<Item = usize> + '_ {
        self.graph
            .neighbors_directed(NodeIndex::new(step), Direction::Incoming)
            .map(|n| n.index())
    }

    /// Steps that need `step` directly.
    pub fn dependents(&self, step: usize) -> impl Iterator<Item = usize> + '_ {
        self.graph
            .neighbors_directed(NodeIndex::new(step), Direction::Outgoing)
            .map(|n| n.index())
    }

    /// Whether `ancestor` must finish before `step` starts (directly or transitively).
    pub fn is_upstream(&self, ancestor: usize, step: usize) -> bool {
        if self.needs(step).any(|n| n == ancestor) {
            return true;
        }
        let mut seen = vec![false; self.len()];
        let mut stack: Vec<usize> = self.needs(step).collect();
        while let Some(s) = stack.pop() {
            if s == ancestor {
                return true;
            }
            if !std::mem::replace(&mut seen[s], true) {
                stack.extend(self.needs(s));
            }
        }
        false
    }

    /// Every cycle's path (each a list of step indices, first == last
    /// omitted), found with Kahn's algorithm; empty for a DAG.
    pub fn cycles(&self) -> Vec<Vec<usize>> {
        let n = self.len();
        let mut indegree: Vec<usize> = (0..n).map(|i| self.needs(i).count()).collect();
        let mut ready: Vec<usize> = (0..n).filter(|&i| indegree[i] == 0).collect();
        let mut done = vec![false; n];
        while let Some(s) = ready.pop() {
            done[s] = true;
            for d in self.dependents(s) {
                indegree[d] -= 1;
                if indegree[d] == 0 {
                    ready.push(d);
                }
            }
        }
        // Every step left has a need that is also left: walking needs finds a cycle.
        let mut cycles = Vec::new();
        let mut visited = vec![usize::MAX; n];
        for start in 0..n {
            if done[start] || visited[start] != usize::MAX {
                continue;
            }
            let mut path = Vec::new();
            let mut cur = start;
            while visited[cur] == usize::MAX {
                visited[cur] = start;
                path.push(cur);
                cur = self.needs(cur).find(|&m| !done[m]).unwrap_or(cur);
            }
            if visited[cur] == start {
                let from = path.iter().position(|&p| p == cur).unwrap_or(0);
                let mut cycle = path[from..].to_vec();
                // Print in execution order: a needs-walk runs backwards.
                cycle.reverse();
                cycles.push(cycle);
            }
        }
        cycles
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_cycle_path() {
        let dag = Dag::new([
            ("a", vec!["c"]),
            ("b", vec!["a"]),
            ("c", vec!["b"]),
            ("d", vec![]),
        ]);
        let cycles = dag.cycles();
        assert_eq!(cycles.len(), 1);
        assert_eq!(cycles[0].len(), 3);
    }

    #[test]
    fn a_step_behind_a_cycle_is_not_a_cycle() {
        let dag = Dag::new([("a", vec!["b"]), ("b", vec!["a"]), ("c", vec!["a"])]);
        let cycles = dag.cycles();
        assert_eq!(cycles.len(), 1);
        assert_eq!(cycles[0].len(), 2);
    }

    #[test]
    fn upstream_is_transitive() {
        let dag = Dag::new([
            ("a", vec![]),
            ("b", vec!["a"]),
            ("c", vec!["b"]),
            ("x", vec![]),
        ]);
        assert!(dag.is_upstream(0, 2));
        assert!(!dag.is_upstream(3, 2));
        assert!(!dag.is_upstream(2, 0));
    }

    #[test]
    fn a_ten_thousand_step_cycle_is_found_without_recursion() {
        let ids: Vec<String> = (0..10_000).map(|i| format!("s{i}")).collect();
        let steps = (0..10_000).map(|i| (ids[i].as_str(), vec![ids[(i + 1) % 10_000].as_str()]));
        let cycles = Dag::new(steps).cycles();
        assert_eq!(cycles[0].len(), 10_000);
    }
}
