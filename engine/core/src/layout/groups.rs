//! Big sets of sibling steps drawn as one node. A generated workflow may
//! hold hundreds of distinct steps that need the same steps and feed the
//! same steps (a fan-out written out by hand or by a script); drawn one by
//! one they bury the graph. Such siblings become one node with per-state
//! counts, and the page lists them on demand.

use std::collections::HashMap;

use super::{layered, Layout};
use crate::dag::Dag;

/// Fewest siblings drawn as one node.
pub const GROUP_MIN: usize = 20;

/// A layout in which node `k` stands for the steps `members[k]`: one step,
/// or a group of siblings.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupedLayout {
    /// Nodes and edges of the drawing; edge ends are node indices.
    pub layout: Layout,
    /// Steps of each node, in step order.
    pub members: Vec<Vec<usize>>,
}

/// Lays out `dag` with every set of at least `min` steps that have the same
/// needs and the same dependents drawn as one node.
pub fn layered_grouped(dag: &Dag, min: usize) -> GroupedLayout {
    let n = dag.len();
    let signature = |i: usize| {
        let mut needs: Vec<usize> = dag.needs(i).collect();
        let mut dependents: Vec<usize> = dag.dependents(i).collect();
        needs.sort_unstable();
        dependents.sort_unstable();
        (needs, dependents)
    };
    let mut siblings: HashMap<(Vec<usize>, Vec<usize>), Vec<usize>> = HashMap::new();
    for i in 0..n {
        siblings.entry(signature(i)).or_default().push(i);
    }
    // Node of each step; nodes numbered in order of their first step.
    let mut node_of = vec![usize::MAX; n];
    let mut members: Vec<Vec<usize>> = Vec::new();
    for i in 0..n {
        if node_of[i] != usize::MAX {
            continue;
        }
        let group = &siblings[&signature(i)];
        let steps = if group.len() >= min {
            group.clone()
        } else {
            vec![i]
        };
        for &s in &steps {
            node_of[s] = members.len();
        }
        members.push(steps);
    }
    if members.len() == n {
        return GroupedLayout {
            layout: layered(dag),
            members,
        };
    }
    let ids: Vec<String> = (0..members.len()).map(|k| k.to_string()).collect();
    let needs: Vec<Vec<&str>> = members
        .iter()
        .map(|steps| {
            // Siblings share their needs: the first one's say it all.
            let mut needs: Vec<usize> = dag.needs(steps[0]).map(|s| node_of[s]).collect();
            needs.sort_unstable();
            needs.dedup();
            needs.into_iter().map(|k| ids[k].as_str()).collect()
        })
        .collect();
    let reduced = Dag::new(ids.iter().map(String::as_str).zip(needs));
    GroupedLayout {
        layout: layered(&reduced),
        members,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `prep`, then `width` steps that need it, then `join` needing them all.
    fn fan(width: usize) -> Dag {
        let ids: Vec<String> = (0..width).map(|i| format!("s{i}")).collect();
        let mut steps: Vec<(&str, Vec<&str>)> = vec![("prep", vec![])];
        steps.extend(ids.iter().map(|id| (id.as_str(), vec!["prep"])));
        steps.push(("join", ids.iter().map(String::as_str).collect()));
        Dag::new(steps)
    }

    #[test]
    fn many_siblings_with_the_same_needs_and_dependents_are_one_node() {
        let g = layered_grouped(&fan(50), GROUP_MIN);
        assert_eq!(g.members.len(), 3);
        assert_eq!(g.members[0], vec![0]);
        assert_eq!(g.members[1], (1..=50).collect::<Vec<_>>());
        assert_eq!(g.members[2], vec![51]);
        assert_eq!(g.layout.nodes.len(), 3);
        let ends: Vec<(usize, usize)> = g.layout.edges.iter().map(|e| (e.from, e.to)).collect();
        assert_eq!(ends, vec![(0, 1), (1, 2)], "one edge each way, not fifty");
        assert!(
            g.layout.nodes[0].x < g.layout.nodes[1].x && g.layout.nodes[1].x < g.layout.nodes[2].x
        );
    }

    #[test]
    fn few_siblings_or_different_dependents_stay_apart() {
        let g = layered_grouped(&fan(GROUP_MIN - 1), GROUP_MIN);
        assert!(g.members.iter().all(|m| m.len() == 1));
        assert_eq!(g.layout, layered(&fan(GROUP_MIN - 1)));
        // Each needs a different step: no two are siblings.
        let ids: Vec<String> = (0..40).map(|i| format!("s{i}")).collect();
        let chain = Dag::new(ids.iter().enumerate().map(|(i, id)| {
            (
                id.as_str(),
                if i == 0 {
                    vec![]
                } else {
                    vec![ids[i - 1].as_str()]
                },
            )
        }));
        assert_eq!(layered_grouped(&chain, GROUP_MIN).members.len(), 40);
    }

    #[test]
    fn groups_next_to_each_other_are_joined_by_one_edge() {
        // 30 steps need `a`; 30 more each need all of those: two groups.
        let first: Vec<String> = (0..30).map(|i| format!("f{i}")).collect();
        let second: Vec<String> = (0..30).map(|i| format!("g{i}")).collect();
        let mut steps: Vec<(&str, Vec<&str>)> = vec![("a", vec![])];
        steps.extend(first.iter().map(|id| (id.as_str(), vec!["a"])));
        let all_first: Vec<&str> = first.iter().map(String::as_str).collect();
        steps.extend(second.iter().map(|id| (id.as_str(), all_first.clone())));
        let g = layered_grouped(&Dag::new(steps), GROUP_MIN);
        assert_eq!(
            g.members.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![1, 30, 30]
        );
        assert_eq!(g.layout.edges.len(), 2);
    }
}
